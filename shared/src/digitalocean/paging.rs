//! Lists: one page at a time or all of them, the first pages at once and the rest after,
//! decoded as each arrives, checked against `meta.total`.

use std::marker::PhantomData;

use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::{Method, Url};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::client::Client;
use super::error::ApiError;

/// One page of a list answer: its collection (under the list's key, which must be a JSON
/// array), the `links.pages.next` URL and `meta.total`.
pub(super) struct Page<T> {
    pub(super) items: Option<Vec<T>>,
    pub(super) next: Option<String>,
    pub(super) total: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    pages: Option<PageLinks>,
}

#[derive(Deserialize, Default)]
struct PageLinks {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    total: Option<u64>,
}

/// Decodes a list page, taking the collection only from `key` (`droplets`, `firewalls`, ...).
/// Other keys are skipped without being kept.
struct PageSeed<'k, T> {
    key: &'k str,
    item: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for PageSeed<'_, T> {
    type Value = Page<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for PageSeed<'_, T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a list page: an object with a {:?} array", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page<T>, A::Error> {
        let mut page = Page {
            items: None,
            next: None,
            total: None,
        };
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key {
                page.items = Some(map.next_value()?);
            } else if k == "links" {
                let links: Option<Links> = map.next_value()?;
                page.next = links.and_then(|l| l.pages).and_then(|p| p.next);
            } else if k == "meta" {
                let meta: Option<Meta> = map.next_value()?;
                page.total = meta.and_then(|m| m.total);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(page)
    }
}

/// Every item of a list as read, and the total the API announced for it.
#[derive(Debug)]
pub struct Listed<T> {
    /// The items of every page, in order (duplicates across pages kept).
    pub items: Vec<T>,
    /// `meta.total` of the first page, if the API sent one.
    pub announced: Option<u64>,
    /// The list as requested, for messages: `GET /v2/droplets?type=gpus`.
    pub request: String,
}

impl<T> Listed<T> {
    /// Why the list is short: `GET /v2/droplets: read 78 items, the API announced 1000`,
    /// or `None` when the items read add up to `meta.total` (or no total was given).
    pub fn shortfall(&self) -> Option<String> {
        let announced = self.announced?;
        let read = self.items.len() as u64;
        (read != announced).then(|| {
            format!(
                "{}: read {read} items, the API announced {announced}",
                self.request
            )
        })
    }

    /// The items, or the shortfall as an error.
    pub fn complete(self) -> Result<Vec<T>, ApiError> {
        match self.shortfall() {
            Some(why) => Err(ApiError::Incomplete(why)),
            None => Ok(self.items),
        }
    }
}

impl Client {
    /// GET a single object at `path` and take the value under `key`.
    pub(super) async fn get_one<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<T, ApiError> {
        let url = self.url(path)?;
        let mut v: serde_json::Value = self.request_json(Method::GET, url, None).await?;
        let inner =
            v.get_mut(key)
                .map(serde_json::Value::take)
                .ok_or_else(|| ApiError::Decode {
                    method: "GET".into(),
                    path: path.into(),
                    message: format!("no `{key}` in the response"),
                })?;
        serde_json::from_value(inner).map_err(|e| ApiError::Decode {
            method: "GET".into(),
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// GETs one list page at `url` and decodes it; the page must carry a `key` array.
    async fn get_page<T: DeserializeOwned>(
        &self,
        url: Url,
        key: &str,
    ) -> Result<Page<T>, ApiError> {
        let path = url.path().to_string();
        let decode = |message: String| ApiError::Decode {
            method: "GET".into(),
            path: path.clone(),
            message,
        };
        let (_, bytes) = self.send(Method::GET, url, None).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let seed = PageSeed {
            key,
            item: PhantomData,
        };
        let page: Page<T> = seed
            .deserialize(&mut de)
            .map_err(|e| decode(e.to_string()))?;
        de.end().map_err(|e| decode(e.to_string()))?;
        if page.items.is_none() {
            return Err(decode(format!("the answer has no {key:?} array")));
        }
        Ok(page)
    }

    /// Page `page` of the list at `url` (its other query parameters kept).
    pub(super) async fn page<T: DeserializeOwned>(
        &self,
        mut url: Url,
        key: &str,
        page: u64,
    ) -> Result<Page<T>, ApiError> {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("per_page", &self.cfg.per_page.to_string())
            .append_pair("page", &page.to_string());
        self.get_page(url, key).await
    }

    /// A `links.pages.next` URL. An absolute URL must be on the API origin (the token and the
    /// trust never go elsewhere); a relative one is taken against it.
    fn next_url(&self, request: &str, next: &str) -> Result<Url, ApiError> {
        let request = request.trim_start_matches("GET ");
        let url = self.base.join(next).map_err(|e| ApiError::Decode {
            method: "GET".into(),
            path: request.into(),
            message: format!("links.pages.next {next:?} is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(ApiError::ForeignLink {
                method: "GET".into(),
                path: request.into(),
                url: url.to_string(),
                origin: self.base.origin().ascii_serialization(),
            });
        }
        Ok(url)
    }

    /// The most pages a list may take: `max_list_items` over `per_page`.
    fn max_pages(&self) -> u64 {
        self.cfg
            .max_list_items
            .div_ceil(u64::from(self.cfg.per_page.max(1)))
            .max(1)
    }

    fn too_long(&self, request: &str, message: String) -> ApiError {
        ApiError::ListTooLong {
            method: "GET".into(),
            path: request.trim_start_matches("GET ").into(),
            message,
        }
    }

    /// Every item of a list whose items must add up to `meta.total`
    /// ([`ApiError::Incomplete`] otherwise).
    pub async fn list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        self.read_list(path, key, query).await?.complete()
    }

    /// Every item of a list endpoint, its collection under `key`: the first page, then the
    /// pages `meta.total` announces (concurrently, decoded one at a time), then any `next`
    /// links. Errors past [`ClientConfig::max_list_items`] or its pages.
    pub async fn read_list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Listed<T>, ApiError> {
        self.read_list_expecting(path, key, query, None).await
    }

    /// [`Client::read_list`] of a list that held `expected` items when last read: the pages
    /// those fill are asked for at once with the first (one round trip, not two: the first
    /// page's `meta.total` is not waited for). Pages past the end come back empty; pages a
    /// grown list added are read after, as `meta.total` announces them. The items are the
    /// same either way; only the requests' timing (and, for a list that shrank, a few empty
    /// pages) differ. An `expected` over [`ClientConfig::max_list_items`] is not used.
    pub async fn read_list_expecting<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
        expected: Option<u64>,
    ) -> Result<Listed<T>, ApiError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = match url.query() {
            Some(q) => format!("GET {}?{q}", url.path()),
            None => format!("GET {}", url.path()),
        };
        let per_page = u64::from(self.cfg.per_page.max(1));
        let hinted = expected
            .filter(|n| *n <= self.cfg.max_list_items)
            .map_or(1, |n| n.div_ceil(per_page).max(1));
        let (first, early, early_next) = self.first_pages::<T>(&url, key, hinted).await?;
        let mut listed = Listed {
            items: first.items.unwrap_or_default(),
            announced: first.total,
            request,
        };
        listed.items.extend(early);
        let mut next = if hinted > 1 { early_next } else { first.next };
        let mut pages = hinted;
        if let Some(total) = first.total {
            if total > self.cfg.max_list_items {
                let msg = format!(
                    "the API announced {total} items, more than the {} this tool will read",
                    self.cfg.max_list_items
                );
                return Err(self.too_long(&listed.request, msg));
            }
            let announced = total.div_ceil(per_page).max(1);
            if announced > hinted {
                next = self
                    .rest_pages(&url, key, (hinted + 1..=announced, None), &mut listed.items)
                    .await?;
                pages = announced;
            }
        }
        self.follow_next(next, key, pages, &mut listed).await?;
        Ok(listed)
    }

    /// Page 1 and, at the same time, pages 2 to `hinted`: page 1, the items of the others in
    /// order, and the last one's `next` link. Once page 1 says how many pages there are,
    /// hinted pages past them not yet asked for are skipped: sizes larger than the list cost
    /// at most `page_concurrency` empty pages.
    async fn first_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &Url,
        key: &str,
        hinted: u64,
    ) -> Result<(Page<T>, Vec<T>, Option<String>), ApiError> {
        let per_page = u64::from(self.cfg.per_page.max(1));
        let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let first = async {
            let first = self.page::<T>(url.clone(), key, 1).await;
            if let Ok(Page { total: Some(t), .. }) = &first {
                let pages = t.div_ceil(per_page).max(1);
                last.store(pages, std::sync::atomic::Ordering::Relaxed);
            }
            first
        };
        let mut early = Vec::new();
        let (first, early_next) = tokio::join!(first, async {
            match hinted {
                1 => Ok(None),
                _ => {
                    let to = (2..=hinted, Some(last.clone()));
                    self.rest_pages(url, key, to, &mut early).await
                }
            }
        });
        Ok((first?, early, early_next?))
    }

    /// The pages `pages` (from 2 on), fetched `page_concurrency` at a time and added in
    /// order; returns the last page's `next` link (the list grew while it was read). A page
    /// past `last` (when given and known by the time its turn comes) is not asked for.
    ///
    /// A list is believed only as far as its pages bear it out: a page that comes back short
    /// (fewer than `per_page` items) is the list's last, whatever `meta.total` announced, and
    /// no page after it is asked for. Those already on their way (at most one wave of
    /// `page_concurrency`) still arrive; the items read fall short of the total, which
    /// [`Listed::shortfall`] reports.
    async fn rest_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &Url,
        key: &str,
        (pages, last): (
            std::ops::RangeInclusive<u64>,
            Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
        ),
        items: &mut Vec<T>,
    ) -> Result<Option<String>, ApiError> {
        let per_page = u64::from(self.cfg.per_page.max(1));
        let first_page = *pages.start();
        let last = last
            .unwrap_or_else(|| std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)));
        let ends_at = last.clone();
        // Each page is fetched and decoded on a task of its own: decoding 50 pages of 200
        // Droplets is spread over the runtime's threads instead of one.
        let mut rest = stream::iter(pages)
            .map(|p| {
                let (client, url, key) = (self.clone(), url.clone(), key.to_string());
                let path = url.path().to_string();
                let last = last.clone();
                async move {
                    if p > last.load(std::sync::atomic::Ordering::Relaxed) {
                        return Ok(Page {
                            items: None,
                            next: None,
                            total: None,
                        });
                    }
                    tokio::spawn(async move { client.page::<T>(url, &key, p).await })
                        .await
                        .map_err(|e| ApiError::Transport {
                            method: "GET".into(),
                            path,
                            message: format!("page {p}: the task reading it failed: {e}"),
                        })?
                }
            })
            .buffered(self.cfg.page_concurrency.max(1));
        let mut next = None;
        let mut number = first_page;
        while let Some(p) = rest.try_next().await? {
            let got = p.items.unwrap_or_default();
            if (got.len() as u64) < per_page {
                ends_at.fetch_min(number, std::sync::atomic::Ordering::Relaxed);
            }
            items.extend(got);
            next = p.next;
            number += 1;
        }
        Ok(next)
    }

    /// Follows `next` links from page `pages`, up to [`Client::max_pages`] in all.
    async fn follow_next<T: DeserializeOwned>(
        &self,
        mut next: Option<String>,
        key: &str,
        mut pages: u64,
        listed: &mut Listed<T>,
    ) -> Result<(), ApiError> {
        while let Some(n) = next.take() {
            if pages >= self.max_pages() {
                let msg = format!(
                    "the list goes on past {} pages of {} ({} items), more than this tool will read",
                    self.max_pages(),
                    self.cfg.per_page,
                    self.cfg.max_list_items
                );
                return Err(self.too_long(&listed.request, msg));
            }
            let url = self.next_url(&listed.request, &n)?;
            let p: Page<T> = self.get_page(url, key).await?;
            pages += 1;
            let items = p.items.unwrap_or_default();
            if items.is_empty() {
                break;
            }
            listed.items.extend(items);
            next = p.next;
        }
        Ok(())
    }
}
