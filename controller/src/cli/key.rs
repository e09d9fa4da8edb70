//! Where the repository passphrase comes from. It is never logged, echoed or put in argv.

use std::io::IsTerminal;
use std::path::Path;

/// The passphrase bytes, from (in order) `--key-file`, `HOLDFAST_PASSPHRASE`, or a prompt.
pub fn passphrase(key_file: Option<&Path>, confirm: bool) -> Result<Vec<u8>, String> {
    if let Some(path) = key_file {
        if std::env::var_os("HOLDFAST_PASSPHRASE").is_some() {
            eprintln!(
                "holdfast: warning: both a key file ({}) and HOLDFAST_PASSPHRASE are set; \
                 using the key file (unset one of them to silence this)",
                path.display()
            );
        }
        let mut bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        // Files written by `echo` end in a newline that is not part of the key.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(format!("key file {} is empty", path.display()));
        }
        return Ok(bytes);
    }
    if let Some(p) = std::env::var_os("HOLDFAST_PASSPHRASE") {
        let bytes = std::os::unix::ffi::OsStringExt::into_vec(p);
        if bytes.is_empty() {
            return Err("HOLDFAST_PASSPHRASE is set but empty".into());
        }
        return Ok(bytes);
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no key given: pass --key-file FILE, set HOLDFAST_KEY_FILE or HOLDFAST_PASSPHRASE, \
                    or run in a terminal to be prompted"
                .into(),
        );
    }
    let first = rpassword::prompt_password("Repository passphrase: ")
        .map_err(|e| format!("cannot read passphrase: {e}"))?;
    if first.is_empty() {
        return Err("empty passphrase".into());
    }
    if confirm {
        let second = rpassword::prompt_password("Repeat passphrase: ")
            .map_err(|e| format!("cannot read passphrase: {e}"))?;
        if first != second {
            return Err("the passphrases do not match".into());
        }
    }
    Ok(first.into_bytes())
}
