//! `bucketfs`: format and inspect bucketfs filesystems.

mod bench;
mod corrupt;
mod crash_point;
mod damage;
mod device;
mod device_add;
mod device_remove;
mod dump;
mod fields;
mod format;
mod fsck;
mod scenario;
mod set_state;
mod show;

use bucketfs_core::options::{lookup, parse_value, Kind, Options, OPTIONS};
use bucketfs_core::target::{Label, Target};
use clap::{Arg, ArgAction, ArgMatches, Command};
use device::Device;
use std::path::PathBuf;
use std::process::ExitCode;

/// Parses a size such as `4096`, `64k`, `1M`.
pub(crate) fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.to_ascii_lowercase().chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("bad size {s:?}"))
}

/// The `DEV...` argument: one or more block devices or image files.
fn devices_arg() -> Arg {
    Arg::new("devices")
        .required(true)
        .num_args(1..)
        .value_parser(clap::value_parser!(PathBuf))
}

fn flag_name(option: &str) -> String {
    option.replace('_', "-")
}

/// `format`'s flags come from the option table: `--NAME VALUE` for integers,
/// `--NAME`/`--no-NAME` for booleans.
fn format_command() -> Command {
    let mut cmd = Command::new("format")
        .about("Make a new filesystem over one or more devices")
        .arg(
            Arg::new("bucket-size")
                .long("bucket-size")
                .default_value("64k")
                .help("bucket size (power of two, 4k..16M)"),
        )
        .arg(
            Arg::new("label")
                .long("label")
                .action(ArgAction::Append)
                .value_name("LABEL")
                .help(
                    "label of the device that follows (a-z, 0-9, '.', '_', '-'; up to 31 \
                     bytes), e.g. --label ssd DEV1 --label hdd.hdd1 DEV2",
                ),
        )
        .arg(devices_arg());
    for d in OPTIONS.iter().filter(|d| d.settable.format) {
        let name = flag_name(d.name);
        cmd = match d.kind {
            Kind::Bool => cmd
                .arg(
                    Arg::new(d.name)
                        .long(name.clone())
                        .action(ArgAction::SetTrue)
                        .help(d.help),
                )
                .arg(
                    Arg::new(format!("no-{}", d.name))
                        .long(format!("no-{name}"))
                        .action(ArgAction::SetTrue)
                        .conflicts_with(d.name),
                ),
            Kind::U32 { .. } => cmd.arg(Arg::new(d.name).long(name).value_name("N").help(d.help)),
            Kind::Target => cmd.arg(
                Arg::new(d.name)
                    .long(name)
                    .value_name("TARGET")
                    .help(d.help),
            ),
        };
    }
    cmd
}

fn cli() -> Command {
    Command::new("bucketfs")
        .about("bucketfs userspace tool")
        .subcommand_required(true)
        .subcommand(format_command())
        .subcommand(
            Command::new("device")
                .about("Change the members of an unmounted filesystem")
                .subcommand_required(true)
                .subcommand(
                    Command::new("add")
                        .about(
                            "Add NEWDEV as a new member of the filesystem whose members are \
                             DEV... (all of them)",
                        )
                        .arg(
                            Arg::new("new")
                                .long("new")
                                .required(true)
                                .value_name("NEWDEV")
                                .value_parser(clap::value_parser!(PathBuf)),
                        )
                        .arg(Arg::new("bucket-size").long("bucket-size").help(
                            "bucket size of the new member (default: the first member not removed)",
                        ))
                        .arg(devices_arg()),
                )
                .subcommand(
                    Command::new("remove")
                        .about(
                            "Remove member N, which must hold no btree node copy (evacuate it \
                             while mounted: dev-N/evacuate), from the filesystem whose members \
                             are DEV... (every other member; N's device may be left out)",
                        )
                        .arg(
                            Arg::new("member")
                                .long("member")
                                .required(true)
                                .value_name("N")
                                .value_parser(clap::value_parser!(u32)),
                        )
                        .arg(devices_arg()),
                ),
        )
        .subcommand(
            Command::new("show-super")
                .about("Print a member's superblock")
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("device")
                        .required(true)
                        .value_parser(clap::value_parser!(PathBuf)),
                ),
        )
        .subcommand(
            Command::new("scenario")
                .about(
                    "Write a filesystem in a crash state described by a TOML spec (see \
                     scenario.rs)",
                )
                .arg(Arg::new("spec").required(true))
                .arg(devices_arg()),
        )
        .subcommand(
            Command::new("dump-btree")
                .about(
                    "Walk the btree of an unmounted filesystem: map keys and their digest (as \
                     internal/btree_stats), namespace keys, nodes",
                )
                .arg(
                    Arg::new("keys")
                        .long("keys")
                        .action(ArgAction::SetTrue)
                        .help(
                            "print every key: a map key as KEY VALUE, any other as KIND INO OFF \
                             and its value",
                        ),
                )
                .arg(
                    Arg::new("nodes")
                        .long("nodes")
                        .action(ArgAction::SetTrue)
                        .help("print the bucket of every node copy"),
                )
                .arg(devices_arg()),
        )
        .subcommand(
            Command::new("fsck")
                .about(
                    "Check an unmounted filesystem, read-only: the btree, the journal applied in \
                     memory, the namespace. Exit status: 0 clean, 4 problems found (not \
                     corrected), 8 operational error, 16 usage error",
                )
                .arg(devices_arg()),
        )
        .subcommand(
            Command::new("bench")
                .about("Measurements for `make bench` (run in the guest)")
                .subcommand_required(true)
                .subcommand(
                    Command::new("unstick")
                        .arg(
                            Arg::new("runs")
                                .long("runs")
                                .default_value("20")
                                .value_parser(clap::value_parser!(usize)),
                        )
                        .arg(Arg::new("spec").required(true))
                        .arg(devices_arg()),
                )
                .subcommand(
                    Command::new("drain")
                        .arg(Arg::new("spec").required(true))
                        .arg(devices_arg()),
                )
                .subcommand(
                    Command::new("scale")
                        .about(
                            "Mount time of a big member against reading its table and journal, \
                             and its commit against a small member's",
                        )
                        .arg(Arg::new("big-label").long("big-label").default_value("big"))
                        .arg(
                            Arg::new("small-label")
                                .long("small-label")
                                .default_value("small"),
                        )
                        .arg(
                            Arg::new("runs")
                                .long("runs")
                                .default_value("3")
                                .value_parser(clap::value_parser!(usize)),
                        )
                        .arg(Arg::new("big-spec").required(true))
                        .arg(
                            Arg::new("big-device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        )
                        .arg(Arg::new("small-spec").required(true))
                        .arg(
                            Arg::new("small-device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        ),
                )
                .subcommand(
                    Command::new("meta")
                        .about(
                            "Create, rename and unlink a tree of files, then sync, on bucketfs \
                             and on ext4 made in turn on DEVICE (mounted on /mnt)",
                        )
                        .arg(
                            Arg::new("runs")
                                .long("runs")
                                .default_value("3")
                                .value_parser(clap::value_parser!(usize)),
                        )
                        .arg(
                            Arg::new("dirs")
                                .long("dirs")
                                .default_value("100")
                                .value_parser(clap::value_parser!(usize)),
                        )
                        .arg(
                            Arg::new("files-per-dir")
                                .long("files-per-dir")
                                .default_value("100")
                                .value_parser(clap::value_parser!(usize)),
                        )
                        .arg(
                            Arg::new("device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        ),
                )
                .subcommand(
                    Command::new("replay")
                        .arg(Arg::new("label").long("label").default_value(""))
                        .arg(Arg::new("spec").required(true))
                        .arg(devices_arg()),
                ),
        )
        .subcommand(
            Command::new("debug")
                .about("Debugging aids for tests")
                .subcommand_required(true)
                .subcommand(
                    Command::new("damage")
                        .about(
                            "Damage one piece of metadata of a single-member filesystem, chosen \
                             by a seeded generator",
                        )
                        .arg(
                            Arg::new("seed")
                                .long("seed")
                                .required(true)
                                .value_parser(clap::value_parser!(u64)),
                        )
                        .arg(
                            Arg::new("class")
                                .long("class")
                                .help("Only damage of this class or class/variant"),
                        )
                        .arg(
                            Arg::new("list")
                                .long("list")
                                .action(ArgAction::SetTrue)
                                .help(
                                    "Print the classes and variants that apply to this image, \
                                     one per line, and damage nothing",
                                ),
                        )
                        .arg(
                            Arg::new("device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        ),
                )
                .subcommand(
                    Command::new("set-bucket-state")
                        .about("Rewrite one bucket table entry of a member (checksum recomputed)")
                        .arg(
                            Arg::new("bucket").long("bucket").required(true).help(
                                "bucket number, or root: the root node's bucket on this member",
                            ),
                        )
                        .arg(
                            Arg::new("state")
                                .long("state")
                                .required(true)
                                .help("free, need_discard, btree, journal, superblock or data"),
                        )
                        .arg(
                            Arg::new("device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        ),
                )
                .subcommand(
                    Command::new("corrupt-super")
                        .about("Damage one class of superblock field (both copies)")
                        .arg(
                            Arg::new("field")
                                .long("field")
                                .required(true)
                                .value_parser(corrupt::FIELDS),
                        )
                        .arg(
                            Arg::new("device")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        ),
                ),
        )
}

fn format_options(m: &ArgMatches) -> Result<Options, String> {
    let mut options = Options::default();
    for d in OPTIONS.iter().filter(|d| d.settable.format) {
        let opt = lookup(d.name).unwrap();
        let value = match d.kind {
            Kind::Bool if m.get_flag(d.name) => Some(1),
            Kind::Bool if m.get_flag(&format!("no-{}", d.name)) => Some(0),
            Kind::Bool => None,
            Kind::U32 { .. } | Kind::Target => match m.get_one::<String>(d.name) {
                Some(text) => Some(parse_value(d, text).map_err(|e| {
                    let mut msg = String::new();
                    let _ = e.describe(&mut msg);
                    format!("--{} {text}: {msg}", flag_name(d.name))
                })?),
                None => None,
            },
        };
        if d.kind == Kind::Target {
            if let Some(text) = m.get_one::<String>(d.name) {
                // Parsed above: a target whole, with its label.
                let t =
                    Target::parse(text).map_err(|e| format!("--{}: {}", d.name, e.describe()))?;
                options = options.with_target(t);
                continue;
            }
        }
        if let Some(v) = value {
            // Rules between options are checked once all are known, in format::plan.
            options = options.with_unchecked(opt, v);
        }
    }
    Ok(options)
}

/// Each device's label: a `--label` applies to the device that follows it (bcachefs's way).
fn format_labels(m: &ArgMatches) -> Result<Vec<Label>, String> {
    let devs: Vec<usize> = m.indices_of("devices").map_or(Vec::new(), |i| i.collect());
    let given: Vec<(usize, &String)> = match (m.indices_of("label"), m.get_many::<String>("label"))
    {
        (Some(i), Some(v)) => i.zip(v).collect(),
        _ => Vec::new(),
    };
    let mut labels = vec![Label::NONE; devs.len()];
    for (at, text) in given {
        let Some(d) = devs.iter().position(|&i| i > at) else {
            return Err(format!("--label {text}: no device follows it"));
        };
        if !labels[d].is_none() {
            return Err(format!("--label {text}: a device has one label"));
        }
        labels[d] = Label::parse(text).map_err(|e| format!("--label {text}: {}", e.describe()))?;
    }
    Ok(labels)
}

fn open_all(m: &ArgMatches, write: bool) -> Result<Vec<Device>, String> {
    m.get_many::<PathBuf>("devices")
        .unwrap()
        .map(|p| Device::open(p, write))
        .collect()
}

fn run(m: &ArgMatches) -> Result<(), String> {
    match m.subcommand() {
        Some(("format", m)) => {
            let options = format_options(m)?;
            let labels = format_labels(m)?;
            let bucket_size = parse_size(m.get_one::<String>("bucket-size").unwrap())?;
            let devs = open_all(m, true)?;
            let layout = format::plan(
                &devs,
                &format::FormatSpec {
                    options,
                    bucket_size,
                    labels,
                },
            )?;
            format::write(&devs, &layout)?;
            println!(
                "formatted {} member(s), uuid {}",
                devs.len(),
                bucketfs_core::superblock::UuidFmt(&layout.sb.uuid)
            );
            Ok(())
        }
        Some(("device", m)) => match m.subcommand() {
            Some(("add", m)) => {
                let bucket_size = m
                    .get_one::<String>("bucket-size")
                    .map(|s| parse_size(s))
                    .transpose()?;
                let new = m.get_one::<PathBuf>("new").unwrap();
                // Before anything is opened: a block device opened twice O_EXCL looks busy.
                let same = |p: &PathBuf| match (p.canonicalize(), new.canonicalize()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => p == new,
                };
                if m.get_many::<PathBuf>("devices").unwrap().any(same) {
                    return Err(format!("{}: already a member", new.display()));
                }
                let devs = open_all(m, true)?;
                let new = Device::open(new, true)?;
                println!("{}", device_add::add(&devs, &new, bucket_size)?);
                Ok(())
            }
            Some(("remove", m)) => {
                let devs = open_all(m, true)?;
                let member = *m.get_one::<u32>("member").unwrap();
                println!("{}", device_remove::remove(&devs, member)?);
                Ok(())
            }
            _ => unreachable!("clap requires a subcommand"),
        },
        Some(("scenario", m)) => {
            let mut devs = open_all(m, true)?;
            scenario::scenario(m.get_one::<String>("spec").unwrap(), &mut devs)
        }
        Some(("dump-btree", m)) => dump::dump(
            &open_all(m, false)?,
            m.get_flag("keys"),
            m.get_flag("nodes"),
        ),
        Some(("show-super", m)) => {
            let dev = Device::open(m.get_one::<PathBuf>("device").unwrap(), false)?;
            show::show(&dev, m.get_flag("json"))
        }
        Some(("bench", m)) => {
            let (name, m) = m.subcommand().expect("clap requires a subcommand");
            if name == "scale" {
                let s = |k: &str| m.get_one::<String>(k).unwrap().as_str();
                let p = |k: &str| m.get_one::<PathBuf>(k).unwrap();
                return bench::scale(
                    (s("big-label"), s("big-spec"), p("big-device")),
                    (s("small-label"), s("small-spec"), p("small-device")),
                    *m.get_one::<usize>("runs").unwrap(),
                );
            }
            if name == "meta" {
                let n = |k: &str| *m.get_one::<usize>(k).unwrap();
                let work = bench::MetaWork {
                    dirs: n("dirs"),
                    per_dir: n("files-per-dir"),
                };
                if work.dirs == 0 || work.dirs > 1000 || work.per_dir == 0 || work.files() > 99_999
                {
                    return Err("bench meta: 1..1000 dirs and at most 99999 files".into());
                }
                return bench::meta(m.get_one::<PathBuf>("device").unwrap(), work, n("runs"));
            }
            let spec = m.get_one::<String>("spec").unwrap();
            let devs: Vec<PathBuf> = m.get_many::<PathBuf>("devices").unwrap().cloned().collect();
            match name {
                "unstick" => bench::unstick(spec, &devs, *m.get_one::<usize>("runs").unwrap()),
                "drain" => bench::drain(spec, &devs),
                _ => bench::replay(spec, &devs, m.get_one::<String>("label").unwrap()),
            }
        }
        Some(("debug", m)) => match m.subcommand() {
            Some(("damage", m)) => {
                let dev = Device::open(m.get_one::<PathBuf>("device").unwrap(), true)?;
                let seed = *m.get_one::<u64>("seed").unwrap();
                let class = m.get_one::<String>("class").map(String::as_str);
                if m.get_flag("list") {
                    println!("{}", damage::list(&dev)?);
                    return Ok(());
                }
                println!("damage seed {seed}: {}", damage::damage(&dev, seed, class)?);
                Ok(())
            }
            Some(("set-bucket-state", m)) => {
                let dev = Device::open(m.get_one::<PathBuf>("device").unwrap(), true)?;
                let done = set_state::set_bucket_state(
                    &dev,
                    m.get_one::<String>("bucket").unwrap(),
                    m.get_one::<String>("state").unwrap(),
                )?;
                println!("{done}");
                Ok(())
            }
            Some(("corrupt-super", m)) => {
                let dev = Device::open(m.get_one::<PathBuf>("device").unwrap(), true)?;
                corrupt::corrupt(&dev, m.get_one::<String>("field").unwrap())
            }
            _ => unreachable!("clap requires a subcommand"),
        },
        Some(("fsck", _)) => unreachable!("handled in main"),
        _ => unreachable!("clap requires a subcommand"),
    }
}

fn main() -> ExitCode {
    // fsck's usage errors exit with fsck's status for them.
    let fsck = std::env::args().nth(1).as_deref() == Some("fsck");
    let m = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) if fsck && e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(fsck::EXIT_USAGE);
        }
        Err(e) => e.exit(),
    };
    if let Some(("fsck", m)) = m.subcommand() {
        let paths: Vec<PathBuf> = m.get_many::<PathBuf>("devices").unwrap().cloned().collect();
        return ExitCode::from(fsck::run(&paths));
    }
    match run(&m) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bucketfs: {e}");
            ExitCode::FAILURE
        }
    }
}
