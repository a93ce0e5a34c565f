//! The ledger's in-memory state: organizations own ledgers, ledgers own accounts and
//! transactions. Lookups check the whole path, so a ledger of another organization is "not
//! found" like one that does not exist.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::RwLock;
use uuid::Uuid;

use super::api::ApiError;

/// The state shared by the handlers.
pub(crate) type Db = Arc<RwLock<Store>>;

/// An organization, as answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Organization {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// The subject of the principal that created it; `null` when auth is disabled.
    pub(crate) created_by: Option<String>,
}

/// A ledger of an organization.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ledger {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) name: String,
    pub(crate) created_by: Option<String>,
}

/// An account of a ledger.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Account {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) ledger_id: Uuid,
    pub(crate) name: String,
    pub(crate) created_by: Option<String>,
}

/// A transaction of a ledger: the JSON object it was created with, kept as is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transaction {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) ledger_id: Uuid,
    pub(crate) body: Map<String, Value>,
    pub(crate) created_by: Option<String>,
}

/// Every entity, by id.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) organizations: HashMap<Uuid, Organization>,
    pub(crate) ledgers: HashMap<Uuid, Ledger>,
    pub(crate) accounts: HashMap<Uuid, Account>,
    pub(crate) transactions: HashMap<Uuid, Transaction>,
}

impl Store {
    pub(crate) fn organization(&self, id: Uuid) -> Result<&Organization, ApiError> {
        self.organizations
            .get(&id)
            .ok_or_else(|| ApiError::not_found("organization", id))
    }

    pub(crate) fn ledger(&self, organization_id: Uuid, id: Uuid) -> Result<&Ledger, ApiError> {
        self.organization(organization_id)?;
        self.ledgers
            .get(&id)
            .filter(|l| l.organization_id == organization_id)
            .ok_or_else(|| ApiError::not_found("ledger", id))
    }

    pub(crate) fn account(
        &self,
        organization_id: Uuid,
        ledger_id: Uuid,
        id: Uuid,
    ) -> Result<&Account, ApiError> {
        self.ledger(organization_id, ledger_id)?;
        self.accounts
            .get(&id)
            .filter(|a| a.ledger_id == ledger_id)
            .ok_or_else(|| ApiError::not_found("account", id))
    }

    pub(crate) fn transaction(
        &self,
        organization_id: Uuid,
        ledger_id: Uuid,
        id: Uuid,
    ) -> Result<&Transaction, ApiError> {
        self.ledger(organization_id, ledger_id)?;
        self.transactions
            .get(&id)
            .filter(|t| t.ledger_id == ledger_id)
            .ok_or_else(|| ApiError::not_found("transaction", id))
    }

    /// Removes a ledger with its accounts and transactions.
    pub(crate) fn remove_ledger(&mut self, id: Uuid) {
        self.ledgers.remove(&id);
        self.accounts.retain(|_, a| a.ledger_id != id);
        self.transactions.retain(|_, t| t.ledger_id != id);
    }

    /// Removes an organization with everything it owns.
    pub(crate) fn remove_organization(&mut self, id: Uuid) {
        self.organizations.remove(&id);
        let ledgers: Vec<Uuid> = self
            .ledgers
            .values()
            .filter(|l| l.organization_id == id)
            .map(|l| l.id)
            .collect();
        for ledger in ledgers {
            self.remove_ledger(ledger);
        }
    }
}
