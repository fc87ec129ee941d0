//! The binaries' mains, called from a threaded program (as `cairn` could),
//! refuse to run instead of forking.

#[test]
fn the_mains_that_fork_refuse_a_threaded_process() {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || wait.recv());
    // `--help` would print and return 0 if the main got past its check.
    let help = || vec!["--help".into()];
    assert_eq!(cairn_runtime::monitor_main(help()), 125);
    assert_eq!(cairn_runtime::enter_main(help()), 125);
    assert_eq!(cairn_runtime::pivot_main(help()), 125);
    drop(done);
    let _ = other.join();
}
