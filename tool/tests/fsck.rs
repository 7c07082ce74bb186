//! `bucketfs fsck` exit statuses from the command line: 0 on a new filesystem, 8 when a device
//! cannot be read, 16 on a usage error (the checks themselves: `tool/src/fsck.rs`'s tests).

use std::path::PathBuf;
use std::process::Command;

fn bucketfs(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bucketfs"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[test]
fn exit_statuses() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("bucketfs-fsck-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("a");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let img = img.to_str().unwrap();
    let (code, text) = bucketfs(&["format", img]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = bucketfs(&["fsck", img]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": clean;"), "{text}");
    let missing = dir.join("missing");
    let (code, text) = bucketfs(&["fsck", missing.to_str().unwrap()]);
    assert_eq!(code, 8, "{text}");
    let (code, text) = bucketfs(&["fsck"]);
    assert_eq!(code, 16, "{text}");
    let (code, text) = bucketfs(&["fsck", "--bogus", img]);
    assert_eq!(code, 16, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
