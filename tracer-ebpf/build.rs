//! Compiles the CO-RE accessor shim (`c/core.c`) to LLVM bitcode in OUT_DIR
//! and hands it to bpf-linker as an extra link input. Only when building for
//! the bpf target: host builds of this crate never link the programs.

use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=c/core.c");
    println!("cargo:rerun-if-env-changed=MNTRACE_CLANG");
    // bpf-linker is invoked by rustc; rebuild when it changes.
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bc = out.join("core.bc");
    let clang = env::var("MNTRACE_CLANG").unwrap_or_else(|_| "clang-22".to_owned());
    let status = Command::new(&clang)
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-emit-llvm",
            "-c",
            "-Wall",
            "-Werror",
        ])
        .arg("c/core.c")
        .arg("-o")
        .arg(&bc)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang}: {e}; run `cargo xtask setup` to install clang-22")
        });
    assert!(status.success(), "{clang} failed to compile c/core.c");
    println!("cargo:rustc-link-arg-bins={}", bc.display());
}
