//! Fixture repositories: bare repositories built with the git CLI.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a bare repository `<dir>/<name>.git` commit by commit.
///
/// Files are written into a scratch work tree; each [`RepoBuilder::commit`]
/// snapshots the whole work tree onto the current branch (`main` at first).
/// The bare repository's HEAD stays on `main` (the remote's default branch).
#[derive(Debug)]
pub struct RepoBuilder {
    bare: PathBuf,
    scratch: tempfile::TempDir,
    branch: String,
    head: Option<String>,
    commits: u32,
}

impl RepoBuilder {
    pub fn new(dir: &Path, name: &str) -> RepoBuilder {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let bare = dir.join(format!("{name}.git"));
        let scratch = tempfile::Builder::new()
            .prefix(&format!(".{name}-worktree-"))
            .tempdir_in(dir)
            .expect("creating a scratch work tree");
        std::fs::create_dir(scratch.path().join("wt")).expect("creating the work tree");
        let builder = RepoBuilder {
            bare,
            scratch,
            branch: "main".to_string(),
            head: None,
            commits: 0,
        };
        builder.git(&["init", "-q", "--bare", "--initial-branch=main"], false);
        builder.git(&["config", "uploadpack.allowAnySHA1InWant", "true"], false);
        builder.git(&["config", "uploadpack.allowFilter", "true"], false);
        builder.git(&["config", "http.receivepack", "false"], false);
        builder
    }

    /// The bare repository.
    pub fn path(&self) -> &Path {
        &self.bare
    }

    fn work_path(&self, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        assert!(!rel.is_empty(), "empty fixture path");
        let full = self.scratch.path().join("wt").join(rel);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("creating fixture directories");
        }
        // Replace whatever was there (file, symlink) so kinds can change.
        let _ = std::fs::remove_file(&full);
        full
    }

    /// Writes a regular file (mode 644).
    pub fn file(&mut self, path: &str, contents: impl AsRef<[u8]>) -> &mut Self {
        let full = self.work_path(path);
        std::fs::write(&full, contents).expect("writing fixture file");
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    /// Writes an executable file (mode 755).
    pub fn executable(&mut self, path: &str, contents: impl AsRef<[u8]>) -> &mut Self {
        let full = self.work_path(path);
        std::fs::write(&full, contents).expect("writing fixture file");
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// Creates a symlink `path` -> `target` (target taken literally).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let full = self.work_path(path);
        std::os::unix::fs::symlink(target, &full).expect("creating fixture symlink");
        self
    }

    /// Writes `count` files `<dir>/f<i>.txt` of `size` bytes each (quickly).
    pub fn many_files(&mut self, dir: &str, count: usize, size: usize) -> &mut Self {
        let base = self
            .scratch
            .path()
            .join("wt")
            .join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&base).expect("creating fixture directory");
        for i in 0..count {
            let mut body = format!("file {i}\n").into_bytes();
            body.resize(size.max(body.len()), b'x');
            body.truncate(size);
            std::fs::write(base.join(format!("f{i}.txt")), &body).expect("writing fixture file");
        }
        self
    }

    /// Commits the whole work tree on the current branch; returns the sha.
    pub fn commit(&mut self, message: &str) -> String {
        self.git(&["add", "-A", "."], true);
        let tree = self.git(&["write-tree"], true);
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
        let parent = self.head.clone();
        if let Some(parent) = parent.as_deref() {
            args.extend(["-p", parent]);
        }
        self.commits += 1;
        let sha = self.git(&args, true);
        assert_eq!(sha.len(), 40, "unexpected sha {sha:?}");
        let refname = format!("refs/heads/{}", self.branch);
        self.git(&["update-ref", &refname, &sha], false);
        self.head = Some(sha.clone());
        sha
    }

    /// Creates branch `name` at the current commit; later commits go to it.
    pub fn branch(&mut self, name: &str) -> &mut Self {
        let head = self.head.clone().expect("branch() needs a commit first");
        self.git(&["update-ref", &format!("refs/heads/{name}"), &head], false);
        self.branch = name.to_string();
        self
    }

    /// Creates a lightweight tag at the current commit.
    pub fn tag(&mut self, name: &str) -> &mut Self {
        let head = self.head.clone().expect("tag() needs a commit first");
        self.git(&["update-ref", &format!("refs/tags/{name}"), &head], false);
        self
    }

    /// Runs git on the bare repository (with the scratch work tree and a
    /// private index when `with_tree`), fixed identity and dates, no
    /// user/system config. Returns trimmed stdout.
    fn git(&self, args: &[&str], with_tree: bool) -> String {
        let date = format!("{} +0000", 1_700_000_000u64 + u64::from(self.commits) * 60);
        let mut cmd = Command::new("git");
        cmd.args(args)
            .env("GIT_DIR", &self.bare)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Fixture Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.invalid")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", "Fixture Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.invalid")
            .env("GIT_COMMITTER_DATE", &date)
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        if with_tree {
            cmd.env("GIT_WORK_TREE", self.scratch.path().join("wt"))
                .env("GIT_INDEX_FILE", self.scratch.path().join("index"))
                .current_dir(self.scratch.path().join("wt"));
        } else {
            cmd.current_dir(self.scratch.path());
        }
        let out = crate::run_ok(&mut cmd);
        String::from_utf8_lossy(&out).trim().to_string()
    }
}
