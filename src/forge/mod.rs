//! Pull requests on GitHub: the pure parts (body, what to do with an existing pull request) and
//! the API client (octocrab), which is the only IO here.

mod body;
mod error;
mod github;

pub use self::body::{
    BodyRow, Desired, Existing, Plan, decide, graphql_endpoint, render_body, rows,
};
pub use self::error::{Action, ForgeError, RateLimit, explain_unprocessable, rate_limit_wait};
pub use self::github::{GitHub, PullRequestView};
