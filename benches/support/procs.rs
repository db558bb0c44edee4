//! The processes a process started, from /proc: the national bench keeps a PostgreSQL
//! server's processes beside it (`benches/national.rs`), and the bench-harness test checks
//! where they ended (`tests/bench_harness.rs`, which includes this file by `#[path]`).

/// The processes whose parent is `parent`, from `/proc/PID/stat` (its fourth field; the
/// second, the command's name in parentheses, may itself hold spaces or parentheses, so the
/// fields are counted from the last `)`). Empty when /proc cannot be read.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// A process's parent, or `None` when it has ended (or /proc says nothing readable).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(1)?.parse().ok()
}
