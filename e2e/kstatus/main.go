// kstatus-check reads Holdfast objects captured from the end-to-end runs, each a JSON file
// {"object": {...}, "expect": {"kstatus": "Current", ...}}, computes their status with the
// kstatus library that Flux and kubectl-style waiters use (sigs.k8s.io/cli-utils), and
// fails if any differs from what the scenario expected. Argo CD's reading of the same
// files is checked by the Lua health script tests.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	// Decodes whole numbers as int64, as unstructured objects need.
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type capture struct {
	Object map[string]any `json:"object"`
	Expect struct {
		Kstatus string `json:"kstatus"`
	} `json:"expect"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus-check DIR...")
		os.Exit(2)
	}
	var files []string
	for _, dir := range os.Args[1:] {
		found, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		files = append(files, found...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "no captured objects found")
		os.Exit(2)
	}
	failed := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var c capture
		if err := json.Unmarshal(data, &c); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(2)
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: c.Object})
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			failed++
			continue
		}
		mark := "ok"
		if res.Status.String() != c.Expect.Kstatus {
			mark = "FAIL"
			failed++
		}
		fmt.Printf("%-4s %-42s kstatus %-10s (expected %s) %s\n", mark, filepath.Base(f),
			res.Status, c.Expect.Kstatus, res.Message)
	}
	if failed > 0 {
		fmt.Printf("%d of %d captured objects read differently by kstatus\n", failed, len(files))
		os.Exit(1)
	}
	fmt.Printf("kstatus reads all %d captured objects as expected\n", len(files))
}
