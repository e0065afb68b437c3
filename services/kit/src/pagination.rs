//! Cursor paging of list endpoints: `?limit=N&after=ID` returns up to N items with ids
//! greater than ID, in id order, and `next_after` to pass for the next page.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// The paging query parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

impl PageParams {
    /// Returns the validated page size.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(limit) => Err(ApiError::bad_request(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
            )),
        }
    }

    /// Returns the validated cursor: 0 when absent.
    pub fn after(&self) -> Result<i64, ApiError> {
        match self.after {
            None => Ok(0),
            Some(after) if after >= 0 => Ok(after),
            Some(after) => Err(ApiError::bad_request(
                "after",
                format!("after must be a non-negative id, got {after}"),
            )),
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `after` value of the next page; absent on the last page.
    pub next_after: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order, so that the extra row
    /// shows whether another page follows.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, id_of: impl Fn(&T) -> i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if has_more {
            rows.last().map(id_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_after,
        }
    }
}
