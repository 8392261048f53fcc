//! Policy files and the `sandbox` subcommands: a custom policy is used, a malformed
//! one is a one-line error, `sandbox show` prints rules and programs, and `sandbox
//! verify` passes the built-in policy and fails one broken on purpose.

use sandvmm_harness as common;

use std::process::Command;
use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);

#[test]
fn a_custom_policy_file_is_used() {
    let dir = Scratch::new("policy");
    let builtin = std::fs::read_to_string(root().join("sandbox/policy/x86_64.toml")).unwrap();
    // Without the vCPU's KVM_RUN rule, the first KVM_RUN is a violation. (The trap
    // report itself needs write and exit_group, so those are not the ones to drop.)
    let stripped = builtin.replacen("\"arg1 == KVM_RUN\"", "\"arg1 == KVM_SET_REGS\"", 1);
    assert_ne!(stripped, builtin);
    let path = dir.file("policy.toml", stripped.as_bytes());
    let run = boot_scenario(
        "hello",
        "",
        &[
            "--sandbox",
            "trap",
            "--sandbox-policy",
            path.to_str().unwrap(),
        ],
        BOOT,
    );
    assert_eq!(run.status.code(), Some(100));
    assert!(
        run.stderr
            .contains("sandbox: blocked syscall ioctl (16) in thread vcpu0, args [0x"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!(", {:#x}, ", sandbox::consts::KVM_RUN)),
        "KVM_RUN is the blocked request: {}",
        run.stderr
    );
}

#[test]
fn malformed_policy_files_are_one_line_errors() {
    let dir = Scratch::new("bad-policy");
    let kernel = testkernel();
    let cases = [
        (
            "syntax.toml",
            "version = 1\n[[vmm]]\nsyscall = \"read\"\nreason = \n",
            "syntax.toml: line 4",
        ),
        (
            "field.toml",
            "version = 1\n[[vcpu]]\nsyscall = \"nope\"\nreason = \"x\"\n",
            "[[vcpu]] rule 1 (nope): field `syscall`",
        ),
        (
            "args.toml",
            "version = 1\n[[vmm]]\nsyscall = \"ioctl\"\nreason = \"x\"\nargs = [\"arg1 === 5\"]\n",
            "field `args`",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.file(name, text.as_bytes());
        run(
            &[
                "--kernel",
                kernel.to_str().unwrap(),
                "--sandbox-policy",
                path.to_str().unwrap(),
            ],
            BOOT,
        )
        .assert_one_line_error(1, needle);
    }
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox-policy",
            "/nonexistent.toml",
        ],
        BOOT,
    )
    .assert_one_line_error(1, "cannot read /nonexistent.toml");
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox",
            "paranoid",
        ],
        BOOT,
    )
    .assert_one_line_error(2, "invalid value 'paranoid' for '--sandbox <MODE>'");
    run(
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--sandbox-profile",
            "strict",
            "--net",
            "tap=x",
        ],
        BOOT,
    )
    .assert_one_line_error(2, "strict takes taps only as fds");
}

#[test]
fn sandbox_show_prints_rules_and_programs() {
    let show = |args: &[&str]| {
        let out = output_within(
            Command::new(sandvmm()).args(["sandbox", "show"]).args(args),
            BOOT,
        );
        (out.status.code(), out.stdout, out.stderr)
    };
    let (code, table, _) = show(&[]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("vcpu: ") && table.contains("arg1 == KVM_RUN") && table.contains("vmm: "),
        "{table}"
    );
    let (_, pfc, _) = show(&["--thread", "vcpu", "--format", "pfc"]);
    assert!(
        pfc.contains("ioctl") && pfc.contains("action KILL_PROCESS;"),
        "{pfc}"
    );
    let (_, bpf, _) = show(&["--thread", "vmm", "--format", "bpf", "--optimize", "tree"]);
    assert!(
        bpf.starts_with("# vmm: ") && bpf.lines().count() > 10,
        "{bpf}"
    );
    let (code, _, err) = show(&["--thread", "gpu"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("invalid value 'gpu' for '--thread <KIND>'"),
        "{err}"
    );
}

#[test]
fn sandbox_verify_passes_the_builtin_policy_and_fails_a_broken_one() {
    let verify = |args: &[&str]| {
        let out = output_within(
            Command::new(sandvmm())
                .args(["sandbox", "verify"])
                .args(args),
            // Millions of interpreted cases: only a bound against a hang.
            Duration::from_secs(600),
        );
        (out.status.code(), out.stdout)
    };
    let (code, text) = verify(&[]);
    assert_eq!(code, Some(0), "{text}");
    // One line per filter: 3 modes x 2 profiles x 2 layouts x 2 thread kinds.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok   ")).count(),
        24,
        "{text}"
    );
    assert!(text.contains("every compiled filter does what the built-in policy says"));
    // Broken on purpose: two rules for one call that overlap and disagree, so no
    // filter can do what the file says.
    let dir = Scratch::new("verify");
    let builtin = std::fs::read_to_string(root().join("sandbox/policy/x86_64.toml")).unwrap();
    let broken = builtin
        + "\n[[vcpu]]\nsyscall = \"ioctl\"\nargs = [\"arg1 <= KVM_RUN\"]\naction = \"errno:EPERM\"\nreason = \"contradicts KVM_RUN\"\n";
    let path = dir.file("broken.toml", broken.as_bytes());
    let (code, text) = verify(&["--sandbox-policy", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL enforce/default/priority vcpu"),
        "{text}"
    );
    assert!(
        text.contains("syscall ioctl (0x10)")
            && text.contains("no single action (overlapping rules disagree)"),
        "{text}"
    );
    assert!(text.contains("compiled filters disagree with"), "{text}");
}
