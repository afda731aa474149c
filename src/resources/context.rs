//! What a kind's `read` gets besides the clients: the checked stack (a record kind knows which hosted zone to
//! scan), a cache that lives for one plan (two kinds that need the same API response call it once), and a limit on
//! per-resource calls (APIs that list tags one resource at a time).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, Semaphore};

use super::Address;
use crate::aws::{Cloud, CloudError};
use crate::spec::Stack;

/// At most this many per-resource read calls at once, across all kinds: enough to keep latency low, few enough
/// not to be throttled.
pub const PER_RESOURCE_CALLS: usize = 8;

type Slot = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

pub struct ReadCtx<'a> {
    pub cloud: &'a Cloud,
    pub stack: &'a Stack,
    /// Set when only one address is wanted (a retried create looking for its resource).
    pub only: Option<&'a Address>,
    cache: Arc<Mutex<HashMap<String, Slot>>>,
    limit: Arc<Semaphore>,
}

impl<'a> ReadCtx<'a> {
    pub fn new(cloud: &'a Cloud, stack: &'a Stack) -> ReadCtx<'a> {
        ReadCtx { cloud, stack, only: None, cache: Arc::default(), limit: Arc::new(Semaphore::new(PER_RESOURCE_CALLS)) }
    }

    /// The same context narrowed to one address (cache not shared: the point is a fresh read).
    pub fn only(&self, address: &'a Address) -> ReadCtx<'a> {
        ReadCtx { only: Some(address), cache: Arc::default(), ..ReadCtx::new(self.cloud, self.stack) }
    }

    /// The result of `load` under `key`, computed once per plan however many kinds ask (concurrent askers wait for
    /// the first). Errors are not cached: the next asker tries again.
    pub async fn shared<T, F, Fut>(&self, key: &str, load: F) -> Result<Arc<T>, CloudError>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.entry(key.to_string()).or_default().clone()
        };
        let value = slot
            .get_or_try_init(|| async { load().await.map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>) })
            .await?
            .clone();
        value.downcast::<T>().map_err(|_| CloudError::internal(format!("read cache: {key} holds another type")))
    }

    /// Runs one per-resource call within the shared limit.
    pub async fn limited<T>(&self, call: impl Future<Output = T>) -> T {
        let _permit = self.limit.acquire().await;
        call.await
    }
}
