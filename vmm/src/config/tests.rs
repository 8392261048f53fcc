//! Unit tests of the configuration (`mod.rs`, `specs.rs`).
use super::*;

use crate::cli::Cli;
use clap::Parser;

fn cli(args: &[&str]) -> Result<VmConfig, ConfigError> {
    let mut argv = vec!["sandvmm", "--kernel", "k"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().run.into_config()
}

#[test]
fn defaults() {
    let c = cli(&[]).unwrap();
    assert_eq!(c.vcpus, 1);
    assert_eq!(c.memory_bytes, 128 << 20);
    assert_eq!(c.serial, SerialTarget::Stdio);
    assert!(c.host_adapt);
    assert_eq!(c.extra_cmdline, None);
}

#[test]
fn memory_sizes() {
    assert_eq!(parse_memory("256"), Ok(256 << 20));
    assert_eq!(parse_memory("256M"), Ok(256 << 20));
    assert_eq!(parse_memory("256MiB"), Ok(256 << 20));
    assert_eq!(parse_memory("2G"), Ok(2 << 30));
    assert_eq!(parse_memory("65536k"), Ok(64 << 20));
    for bad in ["", "M", "12X", "-5", "1.5G", "99999999999999999G"] {
        assert_eq!(
            parse_memory(bad),
            Err(ConfigError::MemorySyntax(bad.into())),
            "{bad}"
        );
    }
    assert_eq!(
        parse_memory("0"),
        Err(ConfigError::MemoryTooSmall("0".into()))
    );
    assert_eq!(
        parse_memory("15M"),
        Err(ConfigError::MemoryTooSmall("15M".into()))
    );
    assert_eq!(
        parse_memory("16385K"),
        Err(ConfigError::MemoryUnaligned("16385K".into()))
    );
}

#[test]
fn cpu_counts() {
    assert_eq!(cli(&["--cpus", "2"]).unwrap().vcpus, 2);
    assert_eq!(cli(&["--cpus", "0"]), Err(ConfigError::Cpus(0)));
    assert_eq!(cli(&["--cpus", "255"]), Err(ConfigError::Cpus(255)));
}

#[test]
fn serial_targets() {
    assert_eq!(
        cli(&["--serial", "none"]).unwrap().serial,
        SerialTarget::None
    );
    assert_eq!(
        cli(&["--serial", "file:/tmp/x,max=1M"]).unwrap().serial,
        SerialTarget::File {
            path: "/tmp/x".into(),
            max: 1 << 20
        }
    );
    // Bad values are clap's errors: status 2 with clap's one line.
    for bad in ["file:", "tcp:1", "STDIO", "file:x,max=lots"] {
        let err = Cli::try_parse_from(["sandvmm", "--kernel", "k", "--serial", bad]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad}");
        assert!(err.to_string().contains("invalid --serial"), "{err}");
    }
}

#[test]
fn net_specs() {
    let c = cli(&["--net", "tap=tap0", "--net", "fd=5,mac=06:00:00:00:00:09"]).unwrap();
    assert_eq!(c.nets[0].backend, NetBackend::Tap("tap0".into()));
    assert_eq!(c.nets[0].mac, default_mac(0));
    assert_eq!(c.nets[1].backend, NetBackend::Fd(5));
    assert_eq!(c.nets[1].mac, [6, 0, 0, 0, 0, 9]);
    for bad in [
        "",
        "tap=",
        "tap0",
        "fd=1",
        "fd=x",
        "tap=a,fd=5",
        "tap=a,mac=01:00:5e:00:00:01",
        "tap=a,speed=10",
        "fd=5,script=/bin/true",
        "tap=a,script=",
        "tap=waytoolongtapname",
    ] {
        assert!(
            matches!(cli(&["--net", bad]), Err(ConfigError::Net(..))),
            "{bad:?}"
        );
    }
}

#[test]
fn duplicate_macs_and_too_many_devices() {
    let dup = cli(&[
        "--net",
        "tap=a,mac=06:00:00:00:00:01",
        "--net",
        "tap=b,mac=06:00:00:00:00:01",
    ]);
    assert!(matches!(dup, Err(ConfigError::DuplicateMac { .. })));
    let clash = cli(&["--net", "tap=a", "--net", "tap=b,mac=06:73:76:6d:00:01"]);
    assert!(
        matches!(clash, Err(ConfigError::DuplicateMac { .. })),
        "clashes with a default MAC"
    );
    let many: Vec<String> = (0..20).map(|i| format!("tap=t{i}")).collect();
    let mut args = Vec::new();
    for m in &many {
        args.extend_from_slice(&["--net", m.as_str()]);
    }
    assert_eq!(cli(&args), Err(ConfigError::TooManyDevices(20)));
}

#[test]
fn sandbox_options() {
    let c = cli(&[]).unwrap().sandbox;
    assert_eq!(
        (c.mode, c.profile, c.optimize),
        (Mode::Enforce, Profile::Default, Optimize::Priority)
    );
    let c = cli(&["--sandbox", "trap", "--sandbox-optimize", "tree"])
        .unwrap()
        .sandbox;
    assert_eq!((c.mode, c.optimize), (Mode::Trap, Optimize::Tree));
    // `trace` is for `sandvmm sandbox profile` only (the hidden --sandbox-trace).
    for (flag, bad) in [
        ("--sandbox", "trace"),
        ("--sandbox-profile", "lax"),
        ("--sandbox-optimize", "fast"),
    ] {
        let err = Cli::try_parse_from(["sandvmm", "--kernel", "k", flag, bad]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{flag}");
    }
    assert_eq!(
        cli(&["--sandbox-profile", "strict", "--net", "tap=t0"]),
        Err(ConfigError::StrictNeedsFd("tap=t0".into()))
    );
    assert!(cli(&["--sandbox-profile", "strict", "--net", "fd=3"]).is_ok());
}

#[test]
fn blank_extra_cmdline_is_ignored() {
    assert_eq!(cli(&["--cmdline", "  "]).unwrap().extra_cmdline, None);
    assert_eq!(
        cli(&["--cmdline", "quiet"])
            .unwrap()
            .extra_cmdline
            .as_deref(),
        Some("quiet")
    );
}

#[test]
fn disk_specs() {
    let d = parse_disk("path=/tmp/a.img,readonly=on,id=root").unwrap();
    assert_eq!(d.backend, DiskBackend::Path("/tmp/a.img".into()));
    assert!(d.read_only);
    assert_eq!(d.id.as_deref(), Some("root"));
    let d = parse_disk("fd=7").unwrap();
    assert_eq!(d.backend, DiskBackend::Fd(7));
    assert!(!d.read_only && d.id.is_none());
    for bad in [
        "",
        "path=",
        "fd=2",
        "fd=x",
        "path=a,fd=7",
        "path=a,readonly=yes",
        "path=a,id=",
        "path=a,id=123456789012345678901",
        "path=a,size=1",
        "readonly=on",
    ] {
        assert!(parse_disk(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn disks_count_with_nets_and_need_distinct_ids_and_strict_needs_fds() {
    let mut args = vec![];
    for _ in 0..10 {
        args.extend(["--net", "fd=5"]);
    }
    for _ in 0..10 {
        args.extend(["--disk", "fd=6"]);
    }
    assert_eq!(cli(&args), Err(ConfigError::TooManyDevices(20)));
    let two = ["--disk", "path=a,id=x", "--disk", "path=b,id=x"];
    assert!(matches!(
        cli(&two),
        Err(ConfigError::DuplicateDiskId { .. })
    ));
    // Default ids are disk0, disk1, ...: an explicit disk1 clashes with the second disk's.
    let clash = ["--disk", "path=a,id=disk1", "--disk", "path=b"];
    assert!(matches!(
        cli(&clash),
        Err(ConfigError::DuplicateDiskId { .. })
    ));
    let strict = ["--sandbox-profile", "strict", "--disk", "path=a"];
    assert!(matches!(
        cli(&strict),
        Err(ConfigError::StrictNeedsDiskFd(_))
    ));
}
