//! The `snapshot_state` target's body without libFuzzer: the committed seeds reach as
//! far as they should, and a few thousand deterministic mutations of them (bytes, and
//! JSON values the way a hand-edited file would change) neither panic nor hang.
//! `SNAPSHOT_FUZZ_ITERS` sets how many; `cargo test -- --ignored write_seeds`
//! rewrites `seeds/snapshot_state/` after a change to the format or the devices.

use std::path::PathBuf;

use serde_json::Value;
use vmm::snapshot::format::{encode_body, DeviceStates};
use vmm::snapshot::Snapshot;

use super::{restore_devices, run, seeds};

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/snapshot_state")
}

fn committed(name: &str) -> Vec<u8> {
    let path = seed_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
#[ignore = "rewrites the committed seeds"]
fn write_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(seed_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn the_committed_seeds_reach_every_restore() {
    let all = |devices: &DeviceStates| 1 + devices.nets.len() + devices.disks.len();
    let state = Snapshot::decode(&committed("state")).expect("the state seed decodes");
    assert_eq!(restore_devices(&state.devices), all(&state.devices));
    assert_eq!(state.devices.disks.len(), 2);

    let body = Snapshot::decode(&encode_body(&committed("body.json")))
        .expect("the body seed decodes with its header");
    assert_eq!(restore_devices(&body.devices), all(&body.devices));

    let devices: DeviceStates = serde_json::from_slice(&committed("devices.json")).unwrap();
    assert_eq!(restore_devices(&devices), all(&devices));
    assert!(seeds().iter().all(|(_, bytes)| bytes.len() < 64 << 10));
}

/// xorshift64*: the same mutations on every run and every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Numbers at the edges of the fields' types and of the devices' limits.
const EDGES: [i128; 22] = [
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    63,
    64,
    65,
    255,
    256,
    4095,
    4096,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX as i128,
    -1,
];

fn edge(rng: &mut Rng, near: Option<i128>) -> Value {
    let n = match near {
        Some(n) if rng.below(3) == 0 => n + rng.below(3) as i128 - 1,
        _ => EDGES[rng.below(EDGES.len())],
    };
    match (u64::try_from(n), i64::try_from(n)) {
        (Ok(u), _) => u.into(),
        (_, Ok(i)) => i.into(),
        _ => 0.into(),
    }
}

/// JSON pointers to every value in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                pointers(member, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One edit of one value, anywhere in `root`.
fn mutate_json(rng: &mut Rng, root: &mut Value) {
    let mut all = Vec::new();
    pointers(root, String::new(), &mut all);
    let Some(v) = root.pointer_mut(&all[rng.below(all.len())]) else {
        return;
    };
    match v {
        Value::Number(n) => {
            let near = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
            *v = edge(rng, near);
        }
        Value::Bool(b) => *b = !*b,
        Value::String(s) => match rng.below(3) {
            0 => s.truncate(rng.below(s.len())),
            1 => s.push('0'),
            _ => *v = edge(rng, None),
        },
        Value::Array(items) => match rng.below(4) {
            0 if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            1 if !items.is_empty() => {
                let copy = items[rng.below(items.len())].clone();
                let copies = [1, 1, 64, 65][rng.below(4)];
                items.extend(std::iter::repeat_n(copy, copies));
            }
            2 => items.clear(),
            _ => items.push(edge(rng, None)),
        },
        Value::Object(members) => {
            if let Some(key) = members.keys().nth(rng.below(members.len())).cloned() {
                members.remove(&key);
            }
        }
        Value::Null => *v = edge(rng, None),
    }
}

/// One edit of the raw bytes: a flipped bit, a byte set, a range cut or repeated.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(b'{');
        return;
    }
    let at = rng.below(bytes.len());
    let len = rng.below(bytes.len() - at).min(64) + 1;
    match rng.below(4) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = b"0f9\"{}[],:-\n"[rng.below(12)],
        2 => {
            bytes.drain(at..at + len);
        }
        _ => {
            let copy = bytes[at..at + len].to_vec();
            bytes.splice(at..at, copy);
        }
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let iterations: usize = std::env::var("SNAPSHOT_FUZZ_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let seeds = seeds();
    let parsed: Vec<Value> = seeds[1..]
        .iter()
        .map(|(_, bytes)| serde_json::from_slice(bytes).unwrap())
        .collect();
    let mut rng = Rng(0x5eed_5a9d_0016_0001);
    let (mut decoded, mut devices, mut restored) = (0, 0, 0);
    for _ in 0..iterations {
        let input = match rng.below(5) {
            0 => {
                let mut bytes = seeds[rng.below(seeds.len())].1.clone();
                for _ in 0..=rng.below(3) {
                    mutate_bytes(&mut rng, &mut bytes);
                }
                bytes
            }
            _ => {
                let mut value = parsed[rng.below(parsed.len())].clone();
                for _ in 0..=rng.below(3) {
                    mutate_json(&mut rng, &mut value);
                }
                serde_json::to_vec(&value).unwrap()
            }
        };
        decoded += usize::from(Snapshot::decode(&encode_body(&input)).is_ok());
        devices += usize::from(serde_json::from_slice::<DeviceStates>(&input).is_ok());
        restored += run(&input);
    }
    // Mutations that all fail to parse would test nothing past the parser.
    eprintln!(
        "{iterations} inputs: {decoded} decoded as a body, {devices} as devices; \
         {restored} device restores succeeded"
    );
    assert!(decoded > iterations / 20 && devices > iterations / 20);
    assert!(restored > iterations);
}
