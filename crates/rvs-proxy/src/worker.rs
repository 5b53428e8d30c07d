//! Worker threads: each runs a current-thread tokio runtime, so a connection lives on one
//! thread from accept to close (thread-local pipe pool and buffers, no work stealing), and the
//! kernel spreads new connections over the workers' `SO_REUSEPORT` sockets.

use std::io;
use std::thread::JoinHandle;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    pub handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts worker number `index`.
    pub fn start(index: usize) -> io::Result<Worker> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("rvs-proxy-{index}"))
            .spawn(move || {
                let rt = match Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime cancels every task: listeners and connections close.
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| io::Error::other("worker thread exited before starting"))??;
        Ok(Worker {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops the worker and waits for its thread.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
