//! Links GCC's unwinder into the binary (`libgcc_eh.a`) instead of loading `libgcc_s.so.1` at run time.
//!
//! The standard library of `*-linux-gnu` targets asks for `-lgcc_s`; here that name resolves first to a linker
//! script in `OUT_DIR` that names the static archive, as `gcc -static-libgcc` does for C++. The reason is start-up
//! time: `libgcc_s.so.1`'s constructor asks the CPU for its features with a dozen `cpuid` instructions, each a
//! trap to the hypervisor on a virtual machine (about 8 µs here), and a build that runs `altcfi check` once per
//! object pays that for every object (see docs/performance.md). Set `ALTCFI_SHARED_LIBGCC=1` to keep the shared
//! library.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ALTCFI_SHARED_LIBGCC");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let crt_static = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if !gnu_linux || crt_static || std::env::var_os("ALTCFI_SHARED_LIBGCC").is_some() {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    // Only with a C compiler that has the archive (gcc does; a clang-only system may not): else nothing changes.
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Some(archive) = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|p| PathBuf::from(p.trim()))
        .filter(|p| p.is_absolute() && p.is_file())
    else {
        return;
    };
    let script = format!(
        "/* altcfi build.rs: the unwinder is linked statically */\nINPUT({})\n",
        archive.display()
    );
    if std::fs::write(out.join("libgcc_s.so"), script).is_ok() {
        println!("cargo:rustc-link-search=native={}", out.display());
    }
}
