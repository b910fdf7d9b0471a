//! The `finhub-auth` binary: parses the command line and hands over to [`finhub_auth::cli`].

use std::process::ExitCode;

/// jemalloc for Rust's allocations: a request allocates and frees many small blocks, often on
/// another thread than the one that allocated them, where glibc's `malloc` took about a sixth of
/// a signed-in read's CPU (mimalloc, faster still, held half as much memory again at its peak;
/// see docs/performance.md). C code linked in (SQLite) keeps the system allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    finhub_auth::cli::main().await
}
