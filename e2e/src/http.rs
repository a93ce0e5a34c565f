//! JSON over HTTP for the tests: requests with an optional bearer token, answers read whole.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A client for the services under test.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// What a service answered.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    /// The raw body.
    pub text: String,
}

impl Answer {
    /// The string at `field`; panics with the answer when there is none.
    pub fn str(&self, field: &str) -> &str {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field:?} in {self:?}"))
    }

    /// Asserts the status, showing the whole answer when it differs.
    pub fn expect(self, status: StatusCode, what: &str) -> Answer {
        assert_eq!(self.status, status, "{what}: {self:?}");
        self
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }
}

impl Http {
    /// Sends `method url` with `token` as a bearer and `body` as JSON.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.client.request(method.clone(), url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} was not answered: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, url, token, None).await
    }

    /// `POST url` with a JSON body.
    pub async fn post(&self, url: &str, token: Option<&str>, body: &Value) -> Answer {
        self.call(Method::POST, url, token, Some(body)).await
    }

    /// `PATCH url` with a JSON body.
    pub async fn patch(&self, url: &str, token: Option<&str>, body: &Value) -> Answer {
        self.call(Method::PATCH, url, token, Some(body)).await
    }

    /// The underlying reqwest client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}
