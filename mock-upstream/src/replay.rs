//! Response bodies: a whole recorded body, or a recorded stream replayed chunk by chunk with
//! its interval, cut or stall.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use crate::cut::CutSwitch;
use crate::error::ReplayError;
use crate::shutdown::ShutdownSignal;

/// Error type of response bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the mock sends.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long a cut stream waits for its connection to fail before it fails the body itself
/// (HTTP/2, where another task flushes the connection).
const CUT_FALLBACK: Duration = Duration::from_millis(200);

/// A whole body in one frame, with a `content-length`.
pub(crate) fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// How one stream is replayed.
pub(crate) struct ReplayPlan {
    /// The chunks, each sent as its own frame.
    pub(crate) chunks: Vec<Bytes>,
    /// Delay before every chunk but the first (and before a cut).
    pub(crate) interval: Duration,
    /// Abort the connection after this many chunks.
    pub(crate) cut_after: Option<usize>,
    /// Stop sending, connection open, after this many chunks.
    pub(crate) stall_after: Option<usize>,
    /// Thrown to abort the connection.
    pub(crate) cut: Arc<CutSwitch>,
    /// Ends delays and stalls when the mock shuts down.
    pub(crate) shutdown: ShutdownSignal,
}

/// What happens at a chunk index.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Send,
    Cut,
    Stall,
    End,
}

impl ReplayPlan {
    fn step(&self, index: usize) -> Step {
        let len = self.chunks.len();
        let cut_at = self.cut_after.map(|n| n.min(len));
        let stall_at = self.stall_after.map(|n| n.min(len));
        let cut_first = match (cut_at, stall_at) {
            (Some(c), Some(s)) => c <= s,
            (Some(_), None) => true,
            _ => false,
        };
        if cut_first && cut_at == Some(index) {
            Step::Cut
        } else if stall_at == Some(index) {
            Step::Stall
        } else if index >= len {
            Step::End
        } else {
            Step::Send
        }
    }

    /// The body replaying this plan.
    pub(crate) fn into_body(self) -> ResponseBody {
        let frames = stream::unfold((self, 0usize, false), |(mut plan, index, done)| async move {
            if done {
                return None;
            }
            let step = plan.step(index);
            if index > 0 && matches!(step, Step::Send | Step::Cut) && !plan.shutdown.sleep(plan.interval).await {
                return Some((Err(ReplayError::Shutdown.into()), (plan, index, true)));
            }
            match step {
                Step::Send => {
                    let chunk = plan.chunks[index].clone();
                    Some((Ok(Frame::data(chunk)), (plan, index + 1, false)))
                }
                Step::Cut => {
                    tracing::debug!(after = index, "cutting the connection");
                    plan.cut.cut();
                    plan.shutdown.sleep(CUT_FALLBACK).await;
                    Some((Err(ReplayError::Cut(index).into()), (plan, index, true)))
                }
                Step::Stall => {
                    tracing::debug!(after = index, "stalling the stream");
                    plan.shutdown.wait().await;
                    Some((Err(ReplayError::Shutdown.into()), (plan, index, true)))
                }
                Step::End => None,
            }
        });
        StreamBody::new(frames).boxed_unsync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(len: usize, cut_after: Option<usize>, stall_after: Option<usize>) -> ReplayPlan {
        ReplayPlan {
            chunks: vec![Bytes::from_static(b"x"); len],
            interval: Duration::ZERO,
            cut_after,
            stall_after,
            cut: Arc::default(),
            shutdown: crate::shutdown::channel().1,
        }
    }

    #[test]
    fn steps_follow_cut_and_stall() {
        let p = plan(3, None, None);
        assert_eq!([p.step(0), p.step(2), p.step(3)], [Step::Send, Step::Send, Step::End]);
        let p = plan(3, Some(1), Some(2));
        assert_eq!([p.step(0), p.step(1)], [Step::Send, Step::Cut]);
        let p = plan(3, Some(2), Some(1));
        assert_eq!([p.step(0), p.step(1)], [Step::Send, Step::Stall]);
        let p = plan(3, Some(9), None);
        assert_eq!(p.step(3), Step::Cut);
        let p = plan(3, None, Some(0));
        assert_eq!(p.step(0), Step::Stall);
    }
}
