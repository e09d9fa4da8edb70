// Command csi-btrfs is the scenarios' CSI driver: test infrastructure, never shipped.
// Volumes are btrfs subvolumes and snapshots are btrfs snapshots (atomic, real) of one
// btrfs filesystem the cluster script mounts on one node at --root; the driver serves the
// CSI identity, controller and node services on one socket there, and registers itself
// with that node's kubelet through the plugin registration API (there is no
// node-driver-registrar among the modules served here). Volumes are reachable from that
// node only (topology key below), so the PVs it provisions pin their pods there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const (
	driverName  = "btrfs.csi.e2e.holdfast.io"
	topologyKey = "topology.btrfs.csi.e2e.holdfast.io/node"
	// A VolumeSnapshotClass parameter: its snapshots fail.
	failParameter = "e2e.holdfast.io/fail"
)

// The btrfs ioctls used, from linux/btrfs.h: _IOW(0x94, nr, struct btrfs_ioctl_vol_args),
// whose size is 4096.
const (
	iocSnapCreate   = 0x50009401
	iocSubvolCreate = 0x5000940e
	iocSnapDestroy  = 0x5000940f
)

type volArgs struct {
	fd   int64
	name [4088]byte
}

// btrfsIoctl runs one of the ioctls above on the directory dir, naming name in it, with
// the source subvolume src for a snapshot.
func btrfsIoctl(op uintptr, dir, name, src string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	var args volArgs
	copy(args.name[:], name)
	if src != "" {
		s, err := os.Open(src)
		if err != nil {
			return err
		}
		defer s.Close()
		args.fd = int64(s.Fd())
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.Fd(), op, uintptr(unsafe.Pointer(&args))); e != 0 {
		return e
	}
	return nil
}

// meta is what the driver keeps of a volume or snapshot beside it.
type meta struct {
	Source  string    `json:"source,omitempty"`
	Created time.Time `json:"created"`
	Bytes   int64     `json:"bytes"`
}

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	csi.UnimplementedGroupControllerServer
	registration.UnimplementedRegistrationServer
	root     string
	node     string
	endpoint string
	mu       sync.Mutex
}

var safe = regexp.MustCompile(`[^a-z0-9-]`)

// id names a volume or snapshot from the name its sidecar gives (idempotent by name).
func id(prefix, name string) string {
	return prefix + safe.ReplaceAllString(strings.ToLower(name), "-")
}

func (d *driver) volumes() string   { return filepath.Join(d.root, "volumes") }
func (d *driver) snapshots() string { return filepath.Join(d.root, "snapshots") }
func (d *driver) metaPath(id string) string {
	return filepath.Join(d.root, "meta", id+".json")
}

func (d *driver) readMeta(id string) (meta, error) {
	var m meta
	b, err := os.ReadFile(d.metaPath(id))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func (d *driver) writeMeta(id string, m meta) error {
	b, _ := json.Marshal(m)
	return os.WriteFile(d.metaPath(id), b, 0o644)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// --- identity ---------------------------------------------------------------------

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: driverName, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	service := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		service(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		service(csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE),
		service(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
	}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(d.root, &st); err != nil || st.Type != unix.BTRFS_SUPER_MAGIC {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a btrfs filesystem", d.root)
	}
	return &csi.ProbeResponse{}, nil
}

// --- controller -------------------------------------------------------------------

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	rpc := func(t csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
		return &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}}
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{
		rpc(csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME),
		rpc(csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT),
		rpc(csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS),
		rpc(csi.ControllerServiceCapability_RPC_CLONE_VOLUME),
	}}, nil
}

func (d *driver) topology() []*csi.Topology {
	return []*csi.Topology{{Segments: map[string]string{topologyKey: d.node}}}
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "a volume needs a name")
	}
	for _, c := range req.GetVolumeCapabilities() {
		if c.GetMount() == nil {
			return nil, status.Error(codes.InvalidArgument, "only filesystem volumes")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	vid := id("v-", req.GetName())
	path := filepath.Join(d.volumes(), vid)
	size := req.GetCapacityRange().GetRequiredBytes()
	src := req.GetVolumeContentSource()
	if !exists(path) {
		var err error
		switch {
		case src.GetSnapshot() != nil:
			from := filepath.Join(d.snapshots(), src.GetSnapshot().GetSnapshotId())
			if !exists(from) {
				return nil, status.Errorf(codes.NotFound, "snapshot %s", src.GetSnapshot().GetSnapshotId())
			}
			err = btrfsIoctl(iocSnapCreate, d.volumes(), vid, from)
		case src.GetVolume() != nil:
			from := filepath.Join(d.volumes(), src.GetVolume().GetVolumeId())
			if !exists(from) {
				return nil, status.Errorf(codes.NotFound, "volume %s", src.GetVolume().GetVolumeId())
			}
			err = btrfsIoctl(iocSnapCreate, d.volumes(), vid, from)
		default:
			err = btrfsIoctl(iocSubvolCreate, d.volumes(), vid, "")
		}
		if err != nil {
			return nil, status.Errorf(codes.Internal, "creating subvolume %s: %v", vid, err)
		}
		if err := d.writeMeta(vid, meta{Created: time.Now(), Bytes: size}); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		log.Printf("created volume %s (%d bytes, from %v)", vid, size, src)
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:           vid,
		CapacityBytes:      size,
		ContentSource:      src,
		AccessibleTopology: d.topology(),
	}}, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := d.destroy(d.volumes(), req.GetVolumeId(), "volume"); err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// destroy deletes the subvolume id of dir (a volume or a snapshot, what) and its meta file;
// one already gone is deleted (idempotent, as CSI wants).
func (d *driver) destroy(dir, id, what string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if exists(filepath.Join(dir, id)) {
		if err := btrfsIoctl(iocSnapDestroy, dir, id, ""); err != nil {
			return status.Errorf(codes.Internal, "deleting %s %s: %v", what, id, err)
		}
		log.Printf("deleted %s %s", what, id)
	}
	_ = os.Remove(d.metaPath(id))
	return nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if !exists(filepath.Join(d.volumes(), req.GetVolumeId())) {
		return nil, status.Errorf(codes.NotFound, "volume %s", req.GetVolumeId())
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (d *driver) snapshot(sid string) (*csi.Snapshot, error) {
	m, err := d.readMeta(sid)
	if err != nil {
		return nil, err
	}
	return &csi.Snapshot{
		SnapshotId:     sid,
		SourceVolumeId: m.Source,
		CreationTime:   timestamppb.New(m.Created),
		SizeBytes:      m.Bytes,
		ReadyToUse:     true,
	}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetParameters()[failParameter] != "" {
		// For the scenarios: a snapshot the driver refuses for good (a final error: a retried
		// one, such as ResourceExhausted, keeps the snapshot being created, and its
		// deletion waits for the retries).
		return nil, status.Errorf(codes.FailedPrecondition, "refused: the VolumeSnapshotClass asks this test driver to fail (%s)", failParameter)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sid := id("s-", req.GetName())
	from := filepath.Join(d.volumes(), req.GetSourceVolumeId())
	if !exists(filepath.Join(d.snapshots(), sid)) {
		if !exists(from) {
			return nil, status.Errorf(codes.NotFound, "volume %s", req.GetSourceVolumeId())
		}
		source, _ := d.readMeta(req.GetSourceVolumeId())
		// One ioctl: the snapshot is of one instant of the whole volume.
		if err := btrfsIoctl(iocSnapCreate, d.snapshots(), sid, from); err != nil {
			return nil, status.Errorf(codes.Internal, "snapshotting %s: %v", req.GetSourceVolumeId(), err)
		}
		m := meta{Source: req.GetSourceVolumeId(), Created: time.Now(), Bytes: source.Bytes}
		if err := d.writeMeta(sid, m); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		log.Printf("created snapshot %s of %s", sid, m.Source)
	}
	s, err := d.snapshot(sid)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if s.SourceVolumeId != req.GetSourceVolumeId() {
		return nil, status.Errorf(codes.AlreadyExists, "snapshot %s is of %s", sid, s.SourceVolumeId)
	}
	return &csi.CreateSnapshotResponse{Snapshot: s}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if err := d.destroy(d.snapshots(), req.GetSnapshotId(), "snapshot"); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (d *driver) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	entries, err := os.ReadDir(d.snapshots())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	var out []*csi.ListSnapshotsResponse_Entry
	for _, e := range entries {
		if req.GetSnapshotId() != "" && e.Name() != req.GetSnapshotId() {
			continue
		}
		s, err := d.snapshot(e.Name())
		if err != nil {
			continue
		}
		if req.GetSourceVolumeId() != "" && s.SourceVolumeId != req.GetSourceVolumeId() {
			continue
		}
		out = append(out, &csi.ListSnapshotsResponse_Entry{Snapshot: s})
	}
	return &csi.ListSnapshotsResponse{Entries: out}, nil
}

// --- group controller -------------------------------------------------------------

// groupMeta is what the driver keeps of a group snapshot: its members, in order.
type groupMeta struct {
	Snapshots []string  `json:"snapshots"`
	Created   time.Time `json:"created"`
}

func (d *driver) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

func (d *driver) group(gid string) (*csi.VolumeGroupSnapshot, error) {
	var g groupMeta
	b, err := os.ReadFile(d.metaPath(gid))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	out := &csi.VolumeGroupSnapshot{GroupSnapshotId: gid, CreationTime: timestamppb.New(g.Created), ReadyToUse: true}
	for _, sid := range g.Snapshots {
		s, err := d.snapshot(sid)
		if err != nil {
			return nil, err
		}
		s.GroupSnapshotId = gid
		out.Snapshots = append(out.Snapshots, s)
	}
	return out, nil
}

// CreateVolumeGroupSnapshot snapshots every volume of the group back to back under the
// driver's lock: one ioctl each, milliseconds apart. A storage system's group is one
// instant; this test driver's is as close as btrfs gets without pausing the writers, and
// Holdfast relies only on the API (the scenarios prove one instant with a freeze hook).
func (d *driver) CreateVolumeGroupSnapshot(_ context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	if req.GetParameters()[failParameter] != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "refused: the VolumeGroupSnapshotClass asks this test driver to fail (%s)", failParameter)
	}
	if req.GetName() == "" || len(req.GetSourceVolumeIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "a group snapshot needs a name and volumes")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	gid := id("g-", req.GetName())
	if !exists(d.metaPath(gid)) {
		for _, vid := range req.GetSourceVolumeIds() {
			if !exists(filepath.Join(d.volumes(), vid)) {
				return nil, status.Errorf(codes.NotFound, "volume %s", vid)
			}
		}
		g := groupMeta{Created: time.Now()}
		for _, vid := range req.GetSourceVolumeIds() {
			sid := id("s-", req.GetName()+"-"+vid)
			if !exists(filepath.Join(d.snapshots(), sid)) {
				if err := btrfsIoctl(iocSnapCreate, d.snapshots(), sid, filepath.Join(d.volumes(), vid)); err != nil {
					return nil, status.Errorf(codes.Internal, "snapshotting %s: %v", vid, err)
				}
			}
			source, _ := d.readMeta(vid)
			if err := d.writeMeta(sid, meta{Source: vid, Created: g.Created, Bytes: source.Bytes}); err != nil {
				return nil, status.Errorf(codes.Internal, "%v", err)
			}
			g.Snapshots = append(g.Snapshots, sid)
		}
		b, _ := json.Marshal(g)
		if err := os.WriteFile(d.metaPath(gid), b, 0o644); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		log.Printf("created group snapshot %s of %v", gid, req.GetSourceVolumeIds())
	}
	g, err := d.group(gid)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: g}, nil
}

func (d *driver) DeleteVolumeGroupSnapshot(_ context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	for _, sid := range req.GetSnapshotIds() {
		if err := d.destroy(d.snapshots(), sid, "snapshot"); err != nil {
			return nil, err
		}
	}
	if g, err := d.group(req.GetGroupSnapshotId()); err == nil {
		for _, s := range g.Snapshots {
			if err := d.destroy(d.snapshots(), s.SnapshotId, "snapshot"); err != nil {
				return nil, err
			}
		}
	}
	_ = os.Remove(d.metaPath(req.GetGroupSnapshotId()))
	log.Printf("deleted group snapshot %s", req.GetGroupSnapshotId())
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

func (d *driver) GetVolumeGroupSnapshot(_ context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	g, err := d.group(req.GetGroupSnapshotId())
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "group snapshot %s: %v", req.GetGroupSnapshotId(), err)
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: g}, nil
}

// --- node -------------------------------------------------------------------------

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.node, AccessibleTopology: d.topology()[0]}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	src := filepath.Join(d.volumes(), req.GetVolumeId())
	target := req.GetTargetPath()
	if !exists(src) {
		return nil, status.Errorf(codes.NotFound, "volume %s", req.GetVolumeId())
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount of %s: %v", src, err)
	}
	if req.GetReadonly() {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "read-only remount: %v", err)
		}
	}
	log.Printf("published %s at %s (read-only %v)", req.GetVolumeId(), target, req.GetReadonly())
	return &csi.NodePublishVolumeResponse{}, nil
}

// mounted: target is a mount point (its device differs from its parent's, or it is a bind
// mount of a subvolume, whose device differs too).
func mounted(target string) bool {
	var a, b unix.Stat_t
	if unix.Stat(target, &a) != nil || unix.Stat(filepath.Dir(target), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if err := unix.Unmount(target, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return nil, status.Errorf(codes.Internal, "unmounting %s: %v", target, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// --- kubelet plugin registration ----------------------------------------------------

func (d *driver) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              driverName,
		Endpoint:          d.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (d *driver) NotifyRegistrationStatus(_ context.Context, s *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("the kubelet refused the registration: %s", s.Error)
	} else {
		log.Printf("registered with the kubelet")
	}
	return &registration.RegistrationStatusResponse{}, nil
}

func listen(path string) net.Listener {
	_ = os.MkdirAll(filepath.Dir(path), 0o750)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatalf("listening on %s: %v", path, err)
	}
	return l
}

func logged(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("%s: %v", info.FullMethod, err)
	}
	return resp, err
}

func main() {
	root := flag.String("root", "/var/lib/holdfast-csi", "the btrfs filesystem's mount point")
	endpoint := flag.String("endpoint", "/var/lib/kubelet/plugins/"+driverName+"/csi.sock", "the CSI socket")
	registry := flag.String("registry", "/var/lib/kubelet/plugins_registry", "the kubelet's plugin registry")
	flag.Parse()
	d := &driver{root: *root, node: os.Getenv("NODE_NAME"), endpoint: *endpoint}
	if d.node == "" {
		log.Fatal("NODE_NAME is not set")
	}
	if _, err := d.Probe(context.Background(), nil); err != nil {
		log.Fatal(err)
	}
	for _, dir := range []string{d.volumes(), d.snapshots(), filepath.Join(d.root, "meta")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	server := grpc.NewServer(grpc.UnaryInterceptor(logged))
	csi.RegisterIdentityServer(server, d)
	csi.RegisterControllerServer(server, d)
	csi.RegisterNodeServer(server, d)
	csi.RegisterGroupControllerServer(server, d)
	reg := grpc.NewServer()
	registration.RegisterRegistrationServer(reg, d)
	go func() {
		sock := filepath.Join(*registry, driverName+"-reg.sock")
		if err := reg.Serve(listen(sock)); err != nil {
			log.Fatal(err)
		}
	}()
	fmt.Printf("%s serving on %s for node %s, volumes on %s\n", driverName, *endpoint, d.node, d.root)
	if err := server.Serve(listen(*endpoint)); err != nil {
		log.Fatal(err)
	}
}
