//! `bucketfs device add` on image files: the member is added to every member's superblock,
//! and each refusal leaves the images as they were.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

const MIB: u64 = 1 << 20;

/// A scratch directory of image files, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("bucketfs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn image(&self, name: &str, bytes: u64) -> String {
        let p = self.0.join(name);
        fs::File::create(&p).unwrap().set_len(bytes).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bucketfs(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bucketfs"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn super_json(dev: &str) -> serde_json::Value {
    let (ok, text) = bucketfs(&["show-super", "--json", dev]);
    assert!(ok, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn contents(paths: &[&str]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn adds_a_member_to_every_superblock() {
    let d = Dir::new("devadd");
    let a = d.image("a", 64 * MIB);
    let b = d.image("b", 64 * MIB);
    let c = d.image("c", 48 * MIB);
    let (ok, text) = bucketfs(&["format", "--bucket-size", "64k", &a, &b]);
    assert!(ok, "{text}");
    let before = super_json(&a);
    let (ok, text) = bucketfs(&["device", "add", "--new", &c, &a, &b]);
    assert!(ok, "{text}");
    assert!(text.contains("as member 2"), "{text}");
    for (i, dev) in [&a, &b, &c].iter().enumerate() {
        let sb = super_json(dev);
        assert_eq!(sb["nr_members"], 3, "{dev}: {sb}");
        assert_eq!(sb["member_index"], i, "{dev}: {sb}");
        assert_eq!(
            sb["seq"],
            before["seq"].as_u64().unwrap() + 1,
            "{dev}: {sb}"
        );
        assert_eq!(sb["uuid"], before["uuid"], "{dev}: {sb}");
        assert_eq!(sb["btree_root"], before["btree_root"], "{dev}: {sb}");
        assert!(sb["btree_root"].is_object());
        assert_eq!(sb["members"].as_array().unwrap().len(), 3, "{dev}: {sb}");
    }
    // The whole filesystem reads back: the new member's table is there (dump-btree walks
    // the tree; show-super decodes every copy).
    let (ok, text) = bucketfs(&["dump-btree", &a, &b, &c]);
    assert!(ok, "{text}");
    // A second add to the now three members works the same way, in any member order.
    let e = d.image("e", 64 * MIB);
    let (ok, text) = bucketfs(&["device", "add", "--new", &e, &c, &a, &b]);
    assert!(ok, "{text}");
    assert_eq!(super_json(&b)["nr_members"], 4);
}

#[test]
fn refusals_change_nothing() {
    let d = Dir::new("devadd-refuse");
    let a = d.image("a", 64 * MIB);
    let b = d.image("b", 64 * MIB);
    let (ok, text) = bucketfs(&["format", "--bucket-size", "64k", &a, &b]);
    assert!(ok, "{text}");
    let small = d.image("small", 512 * 1024);
    let copy = d.image("copy", 64 * MIB);
    fs::copy(&b, &copy).unwrap();
    let all = [a.as_str(), b.as_str(), small.as_str(), copy.as_str()];
    let before = contents(&all);

    // A member, given as the new device.
    let (ok, text) = bucketfs(&["device", "add", "--new", &b, &a, &b]);
    assert!(!ok && text.contains("already a member"), "{text}");
    // A copy of a member (same filesystem, a member uuid of the table).
    let (ok, text) = bucketfs(&["device", "add", "--new", &copy, &a, &b]);
    assert!(!ok && text.contains("already a member"), "{text}");
    // Too small.
    let (ok, text) = bucketfs(&["device", "add", "--new", &small, &a, &b]);
    assert!(!ok && text.contains("too small"), "{text}");
    // Not every member given.
    let e = d.image("e", 64 * MIB);
    let (ok, text) = bucketfs(&["device", "add", "--new", &e, &a]);
    assert!(!ok && text.contains("missing"), "{text}");
    assert_eq!(contents(&all), before);
    assert!(fs::read(&e).unwrap().iter().all(|&x| x == 0));
}

#[test]
fn sixteen_members_is_the_limit() {
    let d = Dir::new("devadd-full");
    let mut devs: Vec<String> = (0..16)
        .map(|i| d.image(&format!("m{i}"), 2 * MIB))
        .collect();
    let args: Vec<&str> = ["format", "--bucket-size", "4k"]
        .into_iter()
        .chain(devs[..15].iter().map(|s| s.as_str()))
        .collect();
    let (ok, text) = bucketfs(&args);
    assert!(ok, "{text}");
    let add = |new: &str, members: &[String]| {
        let args: Vec<&str> = ["device", "add", "--new", new]
            .into_iter()
            .chain(members.iter().map(|s| s.as_str()))
            .collect();
        bucketfs(&args)
    };
    let (ok, text) = add(&devs[15], &devs[..15]);
    assert!(ok, "{text}");
    devs.push(d.image("m16", 2 * MIB));
    let (ok, text) = add(&devs[16], &devs[..16]);
    assert!(!ok && text.contains("16 entries already"), "{text}");
}
