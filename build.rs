//! Rebuild when a built-in role changes: include_dir cannot see files added to roles/.
fn main() {
    println!("cargo:rerun-if-changed=roles");
}
