//! A child process whose stdout lines are collected as they come and whose stderr goes to a
//! file, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running child process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and the variables `env` added to this process's
    /// environment; its stderr goes to `<log_dir>/<name>.stderr`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Process {
        let stderr = log_dir.join(format!("{name}.stderr"));
        let stderr_file = std::fs::File::create(&stderr).expect("stderr file created");
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} ({}) could not start: {e}", program.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(line);
                }
            });
        }
        Process {
            name: name.to_owned(),
            child,
            lines,
            stderr,
        }
    }

    /// The first stdout line that starts with `prefix`, waiting up to `timeout` for it. Panics
    /// with the process's stderr if it exits or the time runs out first.
    pub async fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .find(|line| line.starts_with(prefix))
            {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before printing {prefix:?}; stderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} printed no {prefix:?} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops the process (SIGKILL) and waits for it to end.
    pub async fn stop(mut self) {
        self.kill().await;
    }

    /// [`stop`](Self::stop), keeping what it wrote (its stderr file stays readable).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
