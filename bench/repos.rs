//! The repositories the bench clones, generated once and cached under
//! `.cache/bench/repos` (rebuilt when [`VERSION`] changes).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pyexec_tests::fixture::RepoBuilder;

/// Bump to regenerate the cached repositories.
const VERSION: &str = "1";

/// A script that prints a line.
pub const HELLO_PY: &str = "print('hello from the bench')\n";

/// `big.py N`: N MiB of 128-byte lines on stdout, in 64 KiB writes.
pub const BIG_PY: &str = "\
import sys
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
block = (b'y' * 127 + b'\\n') * 512
out = sys.stdout.buffer
for _ in range(n * 16):
    out.write(block)
out.flush()
";

/// Medium repository shape.
pub const MEDIUM_FILES: usize = 20_000;
const MEDIUM_HISTORY_COMMITS: usize = 24;
const MEDIUM_FILES_PER_COMMIT: usize = 3_000;

pub struct Repos {
    pub root: PathBuf,
    pub medium_files: usize,
    pub medium_pack_bytes: u64,
    pub medium_tip_bytes: u64,
}

pub fn ensure(cache: &Path) -> Repos {
    let root = cache.join("repos");
    std::fs::create_dir_all(&root).unwrap();
    let small = root.join("small.git");
    if !is_current(&small) {
        let _ = std::fs::remove_dir_all(&small);
        eprintln!("bench: generating the small repository");
        let mut b = RepoBuilder::new(&root, "small");
        b.file("hello.py", HELLO_PY)
            .file("big.py", BIG_PY)
            .file("README.md", "Benchmark fixture: about 200 small files.\n")
            .many_files("pkg/a", 100, 1024)
            .many_files("pkg/b", 97, 2048);
        b.commit("small fixture");
        stamp(&small, &[]);
    }
    let medium = root.join("medium.git");
    if !is_current(&medium) {
        let _ = std::fs::remove_dir_all(&medium);
        generate_medium(&medium);
    }
    let stamp_text = std::fs::read_to_string(medium.join("bench-version")).unwrap_or_default();
    let field = |name: &str| {
        stamp_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Repos {
        root,
        medium_files: MEDIUM_FILES,
        medium_pack_bytes: field("pack_bytes"),
        medium_tip_bytes: field("tip_bytes"),
    }
}

fn is_current(bare: &Path) -> bool {
    std::fs::read_to_string(bare.join("bench-version"))
        .is_ok_and(|s| s.lines().next() == Some(VERSION))
}

fn stamp(bare: &Path, fields: &[(&str, u64)]) {
    let mut s = format!("{VERSION}\n");
    for (k, v) in fields {
        s.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(bare.join("bench-version"), s).unwrap();
}

/// xorshift64*: deterministic content, fast.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn medium_path(i: usize) -> String {
    // 20 packages × 25 modules × 40 files.
    format!(
        "pkg{:02}/mod{:02}/file{:02}.py",
        i / 1000,
        (i / 40) % 25,
        i % 40
    )
}

/// Source-like text that compresses about 2:1, 256 B – 4 KiB per file.
fn medium_content(rng: &mut Rng, buf: &mut Vec<u8>) {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const WORDS: &[&str] = &[
        "account", "bucket", "region", "role", "policy", "request", "result", "client", "session",
        "token", "retry", "deadline", "config", "handler", "event", "record",
    ];
    buf.clear();
    let size = 256 + rng.below(3840) as usize;
    while buf.len() < size {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        buf.extend_from_slice(format!("    {w}_{:08x} = \"", rng.next() as u32).as_bytes());
        for _ in 0..24 {
            buf.push(B64[rng.below(64) as usize]);
        }
        buf.extend_from_slice(b"\"\n");
    }
}

fn generate_medium(bare: &Path) {
    eprintln!(
        "bench: generating the medium repository ({MEDIUM_FILES} files, {} commits; about a minute)",
        MEDIUM_HISTORY_COMMITS + 1
    );
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(args)
            .env("GIT_DIR", bare)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .expect("running git");
        assert!(st.success(), "git {args:?} failed");
    };
    std::fs::create_dir_all(bare).unwrap();
    git(&["init", "-q", "--bare", "--initial-branch=main"]);
    git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);
    git(&["config", "http.receivepack", "false"]);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--depth=0"])
        .env("GIT_DIR", bare)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    let mut w = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    let mut tip_sizes = vec![0u64; MEDIUM_FILES];
    for c in 0..=MEDIUM_HISTORY_COMMITS {
        let when = 1_700_000_000 + c * 3600;
        let msg = format!("commit {c}");
        write!(
            w,
            "commit refs/heads/main\ncommitter Bench <bench@example.invalid> {when} +0000\ndata {}\n{msg}\n",
            msg.len()
        )
        .unwrap();
        let files: Vec<usize> = if c == 0 {
            (0..MEDIUM_FILES).collect()
        } else {
            (0..MEDIUM_FILES_PER_COMMIT)
                .map(|_| rng.below(MEDIUM_FILES as u64) as usize)
                .collect()
        };
        for i in files {
            medium_content(&mut rng, &mut buf);
            tip_sizes[i] = buf.len() as u64;
            write!(
                w,
                "M 100644 inline {}\ndata {}\n",
                medium_path(i),
                buf.len()
            )
            .unwrap();
            w.write_all(&buf).unwrap();
            w.write_all(b"\n").unwrap();
        }
    }
    w.write_all(b"done\n").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    // One pack, no loose objects: what a hosted repository looks like.
    git(&["repack", "-a", "-d", "-q"]);
    git(&["pack-refs", "--all"]);
    let pack_bytes: u64 = std::fs::read_dir(bare.join("objects/pack"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let tip_bytes: u64 = tip_sizes.iter().sum();
    eprintln!(
        "bench: medium repository: pack {:.0} MB, tip {:.0} MB",
        pack_bytes as f64 / 1e6,
        tip_bytes as f64 / 1e6
    );
    stamp(
        bare,
        &[("pack_bytes", pack_bytes), ("tip_bytes", tip_bytes)],
    );
}
