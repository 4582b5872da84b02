//! `bench sys`: the size of the release `echo_driver.sys` (the echo driver built for
//! x86_64-pc-windows-msvc with the workspace's release profile: LTO, one codegen unit,
//! panic=abort), and of its sections, read with `llvm-readobj --sections` when it is installed.

use crate::figures::Figure;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-pc-windows-msvc";

/// Builds the driver and returns the path of the image cargo reports, or why it could not.
fn build() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--release", "-p", "echo-driver", "--lib", "--target", TARGET])
        .args(["--message-format=json"])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build failed (is `rustup target add {TARGET}` done?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .find_map(|l| {
            let end = l.find("echo_driver.dll\"")? + "echo_driver.dll".len();
            let start = l[..end].rfind('"')? + 1;
            Some(PathBuf::from(&l[start..end]))
        })
        .ok_or_else(|| "cargo reported no echo_driver.dll".to_string())
}

/// (name, virtual size, raw size on disk) of each section, from llvm-readobj.
fn sections(image: &Path) -> Option<Vec<(String, u64, u64)>> {
    let output = Command::new("llvm-readobj")
        .arg("--sections")
        .arg(image)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut out = Vec::new();
    let mut current: Option<(String, u64, u64)> = None;
    let number = |v: &str| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("Name: ") {
            if let Some(section) = current.take() {
                out.push(section);
            }
            let name = name.split_whitespace().next().unwrap_or(name).to_string();
            current = Some((name, 0, 0));
        } else if let Some(v) = line.strip_prefix("VirtualSize: ") {
            if let (Some(c), Some(v)) = (current.as_mut(), number(v)) {
                c.1 = v;
            }
        } else if let Some(v) = line.strip_prefix("RawDataSize: ")
            && let (Some(c), Some(v)) = (current.as_mut(), number(v))
        {
            c.2 = v;
        }
    }
    out.extend(current);
    Some(out)
}

/// Runs the measurement, prints its table, returns its figures (none if the build is impossible
/// here, with the reason printed).
pub fn run() -> Vec<Figure> {
    let image = match build() {
        Ok(image) => image,
        Err(why) => {
            println!("echo_driver.sys: skipped: {why}");
            return Vec::new();
        }
    };
    let bytes = std::fs::metadata(&image).map(|m| m.len()).expect("image metadata");
    println!(
        "Release echo_driver.sys ({TARGET}): {bytes} bytes ({})",
        image.display()
    );
    let mut figures = vec![Figure::value("sys_bytes", bytes as f64, "bytes")];
    match sections(&image) {
        Some(sections) => {
            println!("  {:<10} {:>12} {:>12}", "section", "virtual", "on disk");
            for (name, virtual_size, raw) in &sections {
                println!("  {name:<10} {virtual_size:>12} {raw:>12}");
                let key = name.trim_start_matches('.');
                figures.push(Figure::value(
                    format!("sys_section_{key}_bytes"),
                    *virtual_size as f64,
                    "bytes",
                ));
            }
        }
        None => println!("  (sections: skipped, llvm-readobj is not installed)"),
    }
    figures
}
