//! Small /proc readers for process-tree and memory assertions.

use std::collections::HashMap;

/// Parent pid of `pid` from /proc/<pid>/stat.
pub fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parens: skip past
    // the last ')'. Then: state ppid ...
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// All live descendants of `pid` (children, grandchildren, ...), found by
/// scanning the ppid of every process in /proc.
pub fn proc_children_of(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(pp) = ppid_of(p) {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(k);
                stack.push(k);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Peak resident set size (VmHWM, KiB) of `pid`.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM:")
}

/// Current resident set size (VmRSS, KiB) of `pid`.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status (`VmRSS:`, `RssAnon:`, ...).
pub fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGKILL every descendant of `root` (a few rounds, for children forked
/// meanwhile); returns the pids killed, to wait for.
pub fn kill_descendants(root: u32) -> Vec<u32> {
    let mut killed = Vec::new();
    for _ in 0..3 {
        let descendants = proc_children_of(root);
        if descendants.is_empty() {
            break;
        }
        for &pid in &descendants {
            crate::kill_pid(pid);
        }
        killed.extend(descendants);
    }
    killed
}

/// The remote port of each TCP socket in this network namespace, by inode
/// (from /proc/net/tcp and tcp6), to tell a process's connections apart.
pub fn tcp_remote_ports() -> HashMap<u64, u16> {
    let mut ports = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        for fields in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            let port = fields
                .get(2)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let inode = fields.get(9).and_then(|i| i.parse().ok());
            if let (Some(port), Some(inode)) = (port, inode) {
                ports.insert(inode, port);
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(vm_hwm_kib(me).unwrap() > 0);
        assert!(is_alive(me));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(proc_children_of(me).contains(&child.id()));
        assert_eq!(ppid_of(child.id()), Some(me));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
