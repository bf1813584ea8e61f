//! The method bodies of [`Store`](super::Store), written once and expanded for each engine.
//!
//! Each engine type provides `pool()` (its `sqlx::Pool`, or `Unavailable` at once while the
//! breaker is open), `begin_write()` (a transaction that holds the write lock from its first
//! statement: `BEGIN IMMEDIATE` on SQLite), the writes that are one statement on
//! PostgreSQL and one transaction in one text on SQLite (`insert_if()`, a refresh token's
//! conditional write with its successor's insert; `consume_code_with_first_refresh()`) and
//! `run_migrations()`; everything else is the same text for both.

macro_rules! impl_store {
    ($engine:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $engine {
            async fn migrate(&self) -> Result<(), StoreError> {
                self.run_migrations().await
            }

            fn outages(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
                self.outage_watch()
            }

            fn pool_stats(&self) -> (u32, usize) {
                (self.pool.size(), self.pool.num_idle())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query(sql::PING).execute(self.pool()?).await?;
                Ok(())
            }

            async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
                let cols = ClientColumns::from(client);
                let done = bind_client(sqlx::query(sql::INSERT_CLIENT_UNLESS_USER), client, &cols)
                    .bind(client.created_at.0)
                    .bind(client.updated_at.0)
                    .execute(self.pool()?)
                    .await?;
                if done.rows_affected() == 0 {
                    // A user has this id: the two namespaces stay apart.
                    return Err(StoreError::Conflict);
                }
                Ok(())
            }

            async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
                sqlx::query_as::<_, ClientRow>(sql::SELECT_CLIENT)
                    .bind(client_id)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(Client::try_from)
                    .transpose()
            }

            async fn clients(&self) -> Result<Vec<Client>, StoreError> {
                sqlx::query_as::<_, ClientRow>(sql::SELECT_CLIENTS)
                    .fetch_all(self.pool()?)
                    .await?
                    .into_iter()
                    .map(Client::try_from)
                    .collect()
            }

            async fn count_clients(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar::<_, i64>(sql::COUNT_CLIENTS)
                    .fetch_one(self.pool()?)
                    .await?)
            }

            async fn client_origins(&self) -> Result<Vec<String>, StoreError> {
                let lists = sqlx::query_scalar::<_, String>(sql::CLIENT_ORIGINS)
                    .fetch_all(self.pool()?)
                    .await?;
                let mut origins = Vec::new();
                for list in lists {
                    let list: Vec<String> = serde_json::from_str(&list).map_err(|e| {
                        StoreError::Internal(format!("corrupt allowed_origins column: {e}"))
                    })?;
                    origins.extend(list);
                }
                origins.sort();
                origins.dedup();
                Ok(origins)
            }

            async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
                let cols = ClientColumns::from(client);
                let done = bind_client(sqlx::query(sql::UPDATE_CLIENT), client, &cols)
                    .bind(client.updated_at.0)
                    .bind(client.revision)
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
                self.delete_client_with(
                    sqlx::query_scalar(sql::DELETE_CLIENT).bind(client_id),
                    client_id,
                )
                .await
            }

            async fn insert_registration_token(
                &self,
                token: &RegistrationToken,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_REGISTRATION_TOKEN)
                    .bind(token.token_hash.0.as_slice())
                    .bind(i64::from(token.uses_left))
                    .bind(token.created_at.0)
                    .bind(token.expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn register_client(
                &self,
                client: &Client,
                initial_token: Option<&SecretHash>,
                max_registered: u32,
                now: UnixTime,
            ) -> Result<Registered, StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(token) = initial_token {
                    let spent = sqlx::query(sql::SPEND_REGISTRATION_TOKEN)
                        .bind(token.0.as_slice())
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                    if spent.rows_affected() != 1 {
                        return Ok(Registered::InitialTokenRejected);
                    }
                }
                let counted = sqlx::query(sql::TAKE_REGISTRATION_QUOTA)
                    .bind(i64::from(max_registered))
                    .execute(&mut *tx)
                    .await?;
                if counted.rows_affected() != 1 {
                    return Ok(Registered::Full);
                }
                let cols = ClientColumns::from(client);
                let inserted =
                    bind_client(sqlx::query(sql::INSERT_CLIENT_UNLESS_USER), client, &cols)
                        .bind(client.created_at.0)
                        .bind(client.updated_at.0)
                        .execute(&mut *tx)
                        .await?;
                if inserted.rows_affected() != 1 {
                    return Err(StoreError::Conflict);
                }
                tx.commit().await?;
                Ok(Registered::Done)
            }

            async fn update_registered_client(
                &self,
                client: &Client,
                presented: &SecretHash,
            ) -> Result<bool, StoreError> {
                let cols = ClientColumns::from(client);
                let done = bind_client(sqlx::query(sql::UPDATE_REGISTERED_CLIENT), client, &cols)
                    .bind(client.updated_at.0)
                    .bind(client.revision)
                    .bind(presented.0.as_slice())
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_registered_client(
                &self,
                client_id: &str,
                presented: &SecretHash,
            ) -> Result<bool, StoreError> {
                let delete = sqlx::query_scalar(sql::DELETE_REGISTERED_CLIENT)
                    .bind(client_id)
                    .bind(presented.0.as_slice());
                self.delete_client_with(delete, client_id).await
            }

            async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
                let done = sqlx::query(sql::INSERT_USER_UNLESS_CLIENT)
                    .bind(&user.id)
                    .bind(&user.username)
                    .bind(&user.email)
                    .bind(&user.name)
                    .bind(user_profile_json(user))
                    .bind(&user.password_hash)
                    .bind(user.disabled)
                    .bind(user.created_at.0)
                    .bind(user.updated_at.0)
                    .execute(self.pool()?)
                    .await?;
                if done.rows_affected() == 0 {
                    // A client has this id: the two namespaces stay apart.
                    return Err(StoreError::Conflict);
                }
                Ok(())
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
                let row = sqlx::query_as::<_, UserRow>(sql::SELECT_USER_BY_USERNAME)
                    .bind(username)
                    .fetch_optional(self.pool()?)
                    .await?;
                row.map(User::try_from).transpose()
            }

            async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
                let row = sqlx::query_as::<_, UserRow>(sql::SELECT_USER_BY_ID)
                    .bind(id)
                    .fetch_optional(self.pool()?)
                    .await?;
                row.map(User::try_from).transpose()
            }

            async fn users(&self) -> Result<Vec<User>, StoreError> {
                let rows = sqlx::query_as::<_, UserRow>(sql::SELECT_USERS)
                    .fetch_all(self.pool()?)
                    .await?;
                rows.into_iter().map(User::try_from).collect()
            }

            async fn update_user_claims(
                &self,
                username: &str,
                edits: &[ClaimEdit],
                now: UnixTime,
            ) -> Result<Option<User>, StoreError> {
                let mut tx = self.begin_write().await?;
                let locked = sqlx::query(sql::LOCK_USER)
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() != 1 {
                    return Ok(None);
                }
                let row = sqlx::query_as::<_, UserRow>(sql::SELECT_USER_BY_USERNAME)
                    .bind(username)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut user = User::try_from(row)?;
                if !ClaimEdit::apply_all(edits, &mut user) {
                    // Nothing changed, so `updated_at` stays; the no-op lock write rolls back.
                    return Ok(Some(user));
                }
                user.updated_at = now;
                sqlx::query(sql::UPDATE_USER_CLAIMS)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.name)
                    .bind(user_profile_json(&user))
                    .bind(user.updated_at.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(user))
            }

            async fn set_user_password(
                &self,
                username: &str,
                hash: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let Some(user_id) = user_id_in(&mut tx, username).await? else {
                    return Ok(false);
                };
                sqlx::query(sql::SET_USER_PASSWORD)
                    .bind(username)
                    .bind(hash)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                end_user_access(&mut tx, &user_id, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn upgrade_password_hash(
                &self,
                user_id: &str,
                checked: &str,
                upgraded: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(sql::UPGRADE_PASSWORD_HASH)
                    .bind(user_id)
                    .bind(checked)
                    .bind(upgraded)
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_user_disabled(
                &self,
                username: &str,
                disabled: bool,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let Some(user_id) = user_id_in(&mut tx, username).await? else {
                    return Ok(false);
                };
                sqlx::query(sql::SET_USER_DISABLED)
                    .bind(username)
                    .bind(disabled)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                if disabled {
                    end_user_access(&mut tx, &user_id, now).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn delete_user(&self, username: &str, now: UnixTime) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let Some(user_id) = user_id_in(&mut tx, username).await? else {
                    return Ok(false);
                };
                queue_user_logouts(&mut tx, &user_id, now).await?;
                sqlx::query(sql::DELETE_USER)
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                for statement in sql::DELETE_USER_REMAINS {
                    sqlx::query(statement)
                        .bind(&user_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_api(&self, api: &Api) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_API)
                    .bind(&api.identifier)
                    .bind(&api.name)
                    .bind(api_scopes_json(api))
                    .bind(api.created_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn api(&self, identifier: &str) -> Result<Option<Api>, StoreError> {
                sqlx::query_as::<_, ApiRow>(sql::SELECT_API)
                    .bind(identifier)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(Api::try_from)
                    .transpose()
            }

            async fn apis(&self) -> Result<Vec<Api>, StoreError> {
                sqlx::query_as::<_, ApiRow>(sql::SELECT_APIS)
                    .fetch_all(self.pool()?)
                    .await?
                    .into_iter()
                    .map(Api::try_from)
                    .collect()
            }

            async fn delete_api(&self, identifier: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(sql::DELETE_API)
                    .bind(identifier)
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
                sqlx::query_as::<_, KeyRow>(sql::SELECT_KEYS)
                    .fetch_all(self.pool()?)
                    .await?
                    .into_iter()
                    .map(StoredKey::try_from)
                    .collect()
            }

            async fn insert_first_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
                bind_key(sqlx::query(sql::INSERT_KEY), key)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn rotate_signing_key(
                &self,
                key: &StoredKey,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::RETIRE_NEXT_KEYS)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                if key.status == KeyStatus::Current {
                    sqlx::query(sql::RETIRE_CURRENT_KEY)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                }
                bind_key(sqlx::query(sql::INSERT_KEY), key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn activate_due_signing_key(&self, now: UnixTime) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let due = sqlx::query_scalar::<_, String>(sql::DUE_NEXT_KEY)
                    .bind(now.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(kid) = due else {
                    return Ok(false);
                };
                sqlx::query(sql::RETIRE_CURRENT_KEY)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                let promoted = sqlx::query(sql::PROMOTE_KEY)
                    .bind(&kid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !promoted {
                    // Another replica promoted it first; its transaction stands.
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_grant(
                &self,
                grant_id: &GrantId,
                client_id: &str,
                user_id: &str,
                now: UnixTime,
                expires_at: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_GRANT)
                    .bind(grant_id.as_str())
                    .bind(client_id)
                    .bind(user_id)
                    .bind(now.0)
                    .bind(expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn revoke_grant(
                &self,
                grant_id: &GrantId,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::REVOKE_GRANT)
                    .bind(grant_id.as_str())
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::REVOKE_GRANT_REFRESH_TOKENS)
                    .bind(grant_id.as_str())
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn grant_status(
                &self,
                grant_id: &GrantId,
            ) -> Result<Option<GrantStatus>, StoreError> {
                let row = sqlx::query_as::<_, (bool, Option<String>)>(sql::GRANT_STATUS)
                    .bind(grant_id.as_str())
                    .fetch_optional(self.pool()?)
                    .await?;
                row.map(|(revoked, claims)| GrantStatus::from_columns(revoked, claims))
                    .transpose()
            }

            async fn grant_status_and_user(
                &self,
                grant_id: &GrantId,
                user_id: &str,
            ) -> Result<Option<(GrantStatus, Option<User>)>, StoreError> {
                let Some(row) = sqlx::query(sql::GRANT_STATUS_AND_USER)
                    .bind(grant_id.as_str())
                    .bind(user_id)
                    .fetch_optional(self.pool()?)
                    .await?
                else {
                    return Ok(None);
                };
                let status = GrantStatus::from_columns(
                    sqlx::Row::try_get(&row, "revoked")?,
                    sqlx::Row::try_get(&row, "userinfo_claims")?,
                )?;
                Ok(Some((status, user_of_left_join(&row)?)))
            }

            async fn set_grant_userinfo_claims(
                &self,
                grant_id: &GrantId,
                claims: &[String],
            ) -> Result<(), StoreError> {
                let text = serde_json::to_string(claims)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                sqlx::query(sql::SET_GRANT_USERINFO_CLAIMS)
                    .bind(grant_id.as_str())
                    .bind(text)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_CODE)
                    .bind(code.code_hash.0.as_slice())
                    .bind(code.grant_id.as_str())
                    .bind(&code.client_id)
                    .bind(&code.user_id)
                    .bind(code.session_hash.as_ref().map(|h| h.0.as_slice()))
                    .bind(&code.redirect_uri)
                    .bind(&code.code_challenge)
                    .bind(&code.code_challenge_method)
                    .bind(code.scope.to_string())
                    .bind(&code.audience)
                    .bind(&code.nonce)
                    .bind(code.auth_time.0)
                    .bind(code.created_at.0)
                    .bind(code.expires_at.0)
                    .bind(
                        (!code.claims.is_empty())
                            .then(|| serde_json::to_string(&code.claims).unwrap_or_default()),
                    )
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn code_and_user(
                &self,
                code_hash: &SecretHash,
                client_id: &str,
            ) -> Result<Option<(AuthorizationCode, Option<User>)>, StoreError> {
                let Some(row) = sqlx::query(sql::SELECT_CODE_AND_USER)
                    .bind(code_hash.0.as_slice())
                    .bind(client_id)
                    .fetch_optional(self.pool()?)
                    .await?
                else {
                    return Ok(None);
                };
                let code =
                    AuthorizationCode::try_from(<CodeRow as sqlx::FromRow<_>>::from_row(&row)?)?;
                Ok(Some((code, user_of_left_join(&row)?)))
            }

            async fn redeem_code(
                &self,
                code_hash: &SecretHash,
                client_id: &str,
                now: UnixTime,
                first_refresh: Option<&RefreshToken>,
            ) -> Result<Redeemed, StoreError> {
                let consumed = match first_refresh {
                    None => {
                        sqlx::query_as::<_, CodeRow>(sql::CONSUME_CODE)
                            .bind(code_hash.0.as_slice())
                            .bind(client_id)
                            .bind(now.0)
                            .fetch_optional(self.pool()?)
                            .await?
                    }
                    Some(token) => {
                        self.consume_code_with_first_refresh(code_hash, client_id, now, token)
                            .await?
                    }
                };
                if let Some(row) = consumed {
                    return Ok(Redeemed::Issued(Box::new(AuthorizationCode::try_from(
                        row,
                    )?)));
                }
                // Read after the write failed, in a transaction of its own: a code changes only
                // by being consumed (once, never back) or deleted, so what stopped the write is
                // still there to see, or the code is gone.
                let state = sqlx::query_as::<_, CodeStateRow>(sql::CODE_STATE)
                    .bind(code_hash.0.as_slice())
                    .fetch_optional(self.pool()?)
                    .await?;
                Ok(classify(state, client_id))
            }

            async fn insert_pending(&self, pending: &PendingRequest) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_PENDING)
                    .bind(pending.id_hash.to_text())
                    .bind(&pending.client_id)
                    .bind(&pending.request)
                    .bind(pending.created_at.0)
                    .bind(pending.expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn pending(
                &self,
                id_hash: &SecretHash,
                now: UnixTime,
            ) -> Result<Option<PendingRequest>, StoreError> {
                sqlx::query_as::<_, PendingRow>(sql::SELECT_PENDING)
                    .bind(id_hash.to_text())
                    .bind(now.0)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(PendingRequest::try_from)
                    .transpose()
            }

            async fn update_pending(
                &self,
                id_hash: &SecretHash,
                request: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let updated = sqlx::query(sql::UPDATE_PENDING)
                    .bind(id_hash.to_text())
                    .bind(request)
                    .bind(now.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(updated.rows_affected() == 1)
            }

            async fn take_pending(
                &self,
                id_hash: &SecretHash,
                now: UnixTime,
            ) -> Result<Option<PendingRequest>, StoreError> {
                sqlx::query_as::<_, PendingRow>(sql::TAKE_PENDING)
                    .bind(id_hash.to_text())
                    .bind(now.0)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(PendingRequest::try_from)
                    .transpose()
            }

            async fn insert_device(&self, device: &DeviceAuthorization) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_DEVICE)
                    .bind(device.device_code_hash.0.as_slice())
                    .bind(&device.user_code_hash)
                    .bind(&device.client_id)
                    .bind(device.scope.to_string())
                    .bind(&device.audience)
                    .bind(device.interval_secs)
                    .bind(device.created_at.0)
                    .bind(device.expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn pending_device(
                &self,
                user_code_hash: &str,
                now: UnixTime,
            ) -> Result<Option<DeviceAuthorization>, StoreError> {
                sqlx::query_as::<_, DeviceRow>(sql::SELECT_DEVICE_BY_USER_CODE)
                    .bind(user_code_hash)
                    .bind(now.0)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(DeviceAuthorization::try_from)
                    .transpose()
            }

            async fn decide_device(
                &self,
                user_code_hash: &str,
                approved_by: Option<(&str, UnixTime)>,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(sql::DECIDE_DEVICE)
                    .bind(user_code_hash)
                    .bind(now.0)
                    .bind(if approved_by.is_some() {
                        "approved"
                    } else {
                        "denied"
                    })
                    .bind(approved_by.map(|(user, _)| user))
                    .bind(approved_by.map(|(_, at)| at.0))
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn poll_device(
                &self,
                device_code_hash: &SecretHash,
                client_id: &str,
                now: UnixTime,
            ) -> Result<DevicePoll, StoreError> {
                let hash = device_code_hash.0.as_slice();
                let row = sqlx::query_as::<_, DeviceRow>(sql::SELECT_DEVICE)
                    .bind(hash)
                    .bind(client_id)
                    .fetch_optional(self.pool()?)
                    .await?;
                let Some(row) = row else {
                    return Ok(DevicePoll::Unknown);
                };
                let status = row.status.clone();
                let device = DeviceAuthorization::try_from(row)?;
                Ok(match status.as_str() {
                    "consumed" => DevicePoll::Spent,
                    _ if device.expires_at <= now => DevicePoll::Expired,
                    "denied" => DevicePoll::Denied,
                    "approved" => {
                        let spent = sqlx::query(sql::SPEND_DEVICE)
                            .bind(hash)
                            .execute(self.pool()?)
                            .await?
                            .rows_affected();
                        if spent == 1 {
                            DevicePoll::Approved(Box::new(device))
                        } else {
                            DevicePoll::Spent
                        }
                    }
                    _ => {
                        let slowed = sqlx::query(sql::SLOW_DOWN_DEVICE)
                            .bind(hash)
                            .bind(now.0)
                            .execute(self.pool()?)
                            .await?
                            .rows_affected();
                        if slowed == 1 {
                            DevicePoll::SlowDown
                        } else {
                            sqlx::query(sql::POLLED_DEVICE)
                                .bind(hash)
                                .bind(now.0)
                                .execute(self.pool()?)
                                .await?;
                            DevicePoll::Pending
                        }
                    }
                })
            }

            async fn take_pending_of(
                &self,
                id_hash: &SecretHash,
                client_id: &str,
                now: UnixTime,
            ) -> Result<Option<PendingRequest>, StoreError> {
                sqlx::query_as::<_, PendingRow>(sql::TAKE_PENDING_OF_CLIENT)
                    .bind(id_hash.to_text())
                    .bind(now.0)
                    .bind(client_id)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(PendingRequest::try_from)
                    .transpose()
            }

            async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_SESSION)
                    .bind(session.id_hash.0.as_slice())
                    .bind(&session.user_id)
                    .bind(session.auth_time.0)
                    .bind(session.created_at.0)
                    .bind(session.expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn session(
                &self,
                id_hash: &SecretHash,
                now: UnixTime,
            ) -> Result<Option<Session>, StoreError> {
                Ok(sqlx::query_as::<_, SessionRow>(sql::SELECT_SESSION)
                    .bind(id_hash.0.as_slice())
                    .bind(now.0)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(Session::from))
            }

            async fn end_session(
                &self,
                id_hash: &SecretHash,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::QUEUE_SESSION_LOGOUTS)
                    .bind(id_hash.0.as_slice())
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::FORGET_SESSION_CLIENTS)
                    .bind(id_hash.0.as_slice())
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(sql::END_SESSION)
                    .bind(id_hash.0.as_slice())
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_session_client(&self, entry: &SessionClient) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_SESSION_CLIENT)
                    .bind(entry.session_hash.0.as_slice())
                    .bind(&entry.client_id)
                    .bind(&entry.sid)
                    .bind(&entry.user_id)
                    .bind(entry.expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn due_logout_deliveries(
                &self,
                now: UnixTime,
                limit: i64,
            ) -> Result<Vec<LogoutDelivery>, StoreError> {
                Ok(
                    sqlx::query_as::<_, LogoutDelivery>(sql::DUE_LOGOUT_DELIVERIES)
                        .bind(now.0)
                        .bind(limit)
                        .fetch_all(self.pool()?)
                        .await?,
                )
            }

            async fn claim_logout_delivery(
                &self,
                id: &str,
                now: UnixTime,
                lease_until: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(sql::CLAIM_LOGOUT_DELIVERY)
                    .bind(id)
                    .bind(now.0)
                    .bind(lease_until.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn retry_logout_delivery(
                &self,
                id: &str,
                at: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::RETRY_LOGOUT_DELIVERY)
                    .bind(id)
                    .bind(at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn delete_logout_delivery(&self, id: &str) -> Result<(), StoreError> {
                sqlx::query(sql::DELETE_LOGOUT_DELIVERY)
                    .bind(id)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn consent(
                &self,
                user_id: &str,
                client_id: &str,
                audience: &str,
            ) -> Result<Option<ScopeSet>, StoreError> {
                sqlx::query_scalar::<_, String>(sql::SELECT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .bind(audience)
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(|text| {
                        ScopeSet::parse(&text)
                            .map_err(|e| StoreError::Internal(format!("corrupt consent: {e}")))
                    })
                    .transpose()
            }

            async fn save_consent(
                &self,
                consent: &Consent,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::UPSERT_CONSENT)
                    .bind(&consent.user_id)
                    .bind(&consent.client_id)
                    .bind(&consent.audience)
                    .bind(consent.scope.to_string())
                    .bind(now.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn login_failures(&self, key: &str) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar::<_, i64>(sql::LOGIN_FAILURES_OF)
                    .bind(key)
                    .fetch_optional(self.pool()?)
                    .await?
                    .unwrap_or(0))
            }

            async fn reserve_login(
                &self,
                keys: &[$crate::store::LimiterKey],
                now: UnixTime,
                window_start: UnixTime,
            ) -> Result<Result<(), UnixTime>, StoreError> {
                let mut tx = self.begin_write().await?;
                for key in keys {
                    let reserved = sqlx::query_scalar::<_, i64>(sql::RESERVE_LOGIN)
                        .bind(&key.key)
                        .bind(now.0)
                        .bind(window_start.0)
                        .bind(i64::from(key.free_failures))
                        .bind(key.max_lockout_secs)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if reserved.is_none() {
                        let until = sqlx::query_scalar::<_, i64>(sql::LOGIN_LOCK_OF)
                            .bind(&key.key)
                            .fetch_optional(&mut *tx)
                            .await?
                            .unwrap_or(now.0);
                        // Dropping the transaction rolls back the keys reserved before.
                        return Ok(Err(UnixTime(until)));
                    }
                }
                tx.commit().await?;
                Ok(Ok(()))
            }

            async fn release_login(&self, key: &str) -> Result<(), StoreError> {
                sqlx::query(sql::RELEASE_LOGIN)
                    .bind(key)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
                sqlx::query(sql::CLEAR_LOGIN_FAILURES)
                    .bind(key)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn insert_first_refresh(&self, token: &RefreshToken) -> Result<(), StoreError> {
                let statement = if <$engine as EngineDb>::DATA_MODIFYING_WITH {
                    sql::INSERT_FIRST_REFRESH
                } else {
                    sql::EXTEND_THEN_INSERT_FIRST_REFRESH
                };
                bind_refresh(sqlx::query(statement), token)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn refresh_token(
                &self,
                token_hash: &SecretHash,
            ) -> Result<Option<RefreshToken>, StoreError> {
                sqlx::query_as::<_, RefreshRow>(sql::SELECT_REFRESH)
                    .bind(token_hash.0.as_slice())
                    .fetch_optional(self.pool()?)
                    .await?
                    .map(RefreshToken::try_from)
                    .transpose()
            }

            async fn refresh_token_and_user(
                &self,
                token_hash: &SecretHash,
            ) -> Result<Option<(RefreshToken, Option<User>)>, StoreError> {
                let Some(row) = sqlx::query(sql::SELECT_REFRESH_AND_USER)
                    .bind(token_hash.0.as_slice())
                    .fetch_optional(self.pool()?)
                    .await?
                else {
                    return Ok(None);
                };
                let token =
                    RefreshToken::try_from(<RefreshRow as sqlx::FromRow<_>>::from_row(&row)?)?;
                Ok(Some((token, user_of_left_join(&row)?)))
            }

            async fn rotate_refresh(
                &self,
                presented: &SecretHash,
                successor: &RefreshToken,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                self.insert_if(sql::ROTATION, presented, successor, now)
                    .await
            }

            async fn replace_successor(
                &self,
                presented: &SecretHash,
                successor: &RefreshToken,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                self.insert_if(sql::SUCCESSOR_WITHDRAWAL, presented, successor, now)
                    .await
            }

            async fn revoke_access_token(
                &self,
                jti: &str,
                client_id: &str,
                now: UnixTime,
                expires_at: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::REVOKE_ACCESS_TOKEN)
                    .bind(jti)
                    .bind(client_id)
                    .bind(now.0)
                    .bind(expires_at.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(())
            }

            async fn revoked_access_tokens(
                &self,
                jtis: &[&str],
            ) -> Result<Vec<String>, StoreError> {
                let mut revoked = Vec::new();
                for chunk in jtis.chunks(sql::REVOKED_AMONG_SIZE) {
                    let query = if let [jti] = chunk {
                        sqlx::query_scalar::<_, String>(sql::REVOKED_ONE).bind(*jti)
                    } else {
                        let padding = sql::REVOKED_AMONG_SIZE - chunk.len();
                        chunk
                            .iter()
                            .copied()
                            .map(Some)
                            .chain(std::iter::repeat_n(None, padding))
                            .fold(
                                sqlx::query_scalar::<_, String>(sql::REVOKED_AMONG),
                                |q, jti: Option<&str>| q.bind(jti),
                            )
                    };
                    revoked.extend(query.fetch_all(self.pool()?).await?);
                }
                Ok(revoked)
            }

            async fn use_client_assertion(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: UnixTime,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(sql::USE_CLIENT_ASSERTION)
                    .bind(client_id)
                    .bind(jti)
                    .bind(expires_at.0)
                    .bind(now.0)
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn purge(
                &self,
                purge: $crate::store::Purge,
                cutoff: UnixTime,
                batch: u32,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(sql::purge(purge))
                    .bind(cutoff.0)
                    .bind(i64::from(batch))
                    .execute(self.pool()?)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        impl $engine {
            /// Run `delete` (a DELETE of one client `RETURNING registered_via`) and,
            /// if it removed the client, what it leaves behind and its place in the
            /// registration quota, all in one transaction.
            async fn delete_client_with<'q>(
                &self,
                delete: EngineScalar<'q, Option<String>>,
                client_id: &str,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let Some(registration) = delete.fetch_optional(&mut *tx).await? else {
                    return Ok(false);
                };
                if registration.is_some() {
                    sqlx::query(sql::RETURN_REGISTRATION_QUOTA)
                        .execute(&mut *tx)
                        .await?;
                }
                for statement in sql::DELETE_CLIENT_REMAINS {
                    sqlx::query(statement)
                        .bind(client_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }
        }

        /// The id of the user `username`, read inside the transaction that changes the user.
        async fn user_id_in(
            tx: &mut WriteTx<<$engine as EngineDb>::Db>,
            username: &str,
        ) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar::<_, String>(sql::USER_ID_BY_USERNAME)
                .bind(username)
                .fetch_optional(&mut **tx)
                .await?)
        }

        /// Drop the user's unredeemed codes, end their sessions, and revoke their grants and
        /// refresh families, inside the caller's transaction.
        async fn end_user_access(
            tx: &mut WriteTx<<$engine as EngineDb>::Db>,
            user_id: &str,
            now: UnixTime,
        ) -> Result<(), StoreError> {
            // Codes before grants: a redemption locks its code and then its grant
            // (`CONSUME_CODE_WITH_FIRST_REFRESH`), and the other order would let the two wait
            // on each other until PostgreSQL aborts one as a deadlock.
            sqlx::query(sql::DELETE_UNREDEEMED_USER_CODES)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            queue_user_logouts(tx, user_id, now).await?;
            for statement in sql::END_USER_ACCESS {
                sqlx::query(statement)
                    .bind(user_id)
                    .bind(now.0)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Queue a logout token for each client told of one of the user's sessions, and forget
        /// them, inside the caller's transaction (the sessions are ending).
        async fn queue_user_logouts(
            tx: &mut WriteTx<<$engine as EngineDb>::Db>,
            user_id: &str,
            now: UnixTime,
        ) -> Result<(), StoreError> {
            sqlx::query(sql::QUEUE_USER_LOGOUTS)
                .bind(user_id)
                .bind(now.0)
                .execute(&mut **tx)
                .await?;
            sqlx::query(sql::FORGET_USER_SESSION_CLIENTS)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Zero rows changed: say why, from the row as it is now.
        fn classify(state: Option<CodeStateRow>, client_id: &str) -> Redeemed {
            match state {
                None => Redeemed::Unknown,
                // Another client's attempt says nothing about the code's own client: it must
                // not revoke that client's grant, used code or not (a leaked code would
                // otherwise let anyone sign the user out).
                Some(row) if row.client_id != client_id => Redeemed::WrongClient,
                Some(row) if row.consumed_at.is_some() => Redeemed::Replayed {
                    grant_id: GrantId::from_stored(row.grant_id),
                },
                Some(_) => Redeemed::Expired,
            }
        }

        /// The user of a row that LEFT JOINs `users`: `None` when its columns are NULL, the
        /// user being gone.
        fn user_of_left_join(
            row: &<<$engine as EngineDb>::Db as sqlx::Database>::Row,
        ) -> Result<Option<User>, StoreError> {
            let id: Option<String> = sqlx::Row::try_get(row, "id")?;
            id.map(|_| User::try_from(<UserRow as sqlx::FromRow<_>>::from_row(row)?))
                .transpose()
        }

        /// A statement of this engine with its arguments, as `sqlx::query` returns it.
        type EngineQuery<'q> = sqlx::query::Query<
            'q,
            <$engine as EngineDb>::Db,
            <<$engine as EngineDb>::Db as sqlx::Database>::Arguments,
        >;

        /// A one-column statement of this engine, as `sqlx::query_scalar` returns it.
        type EngineScalar<'q, O> = sqlx::query::QueryScalar<
            'q,
            <$engine as EngineDb>::Db,
            O,
            <<$engine as EngineDb>::Db as sqlx::Database>::Arguments,
        >;

        /// `$1`..`$17` of both client statements: every column but the timestamps and revision.
        fn bind_client<'q>(
            query: EngineQuery<'q>,
            client: &'q Client,
            cols: &'q ClientColumns,
        ) -> EngineQuery<'q> {
            query
                .bind(&client.client_id)
                .bind(&client.client_name)
                .bind(client.secret_hash.as_ref().map(|h| h.0.as_slice()))
                .bind(client.token_endpoint_auth_method())
                .bind(&cols.grant_types)
                .bind(&cols.redirect_uris)
                .bind(&cols.scope)
                .bind(&cols.audiences)
                .bind(&cols.allowed_origins)
                .bind(client.first_party)
                .bind(&cols.post_logout_redirect_uris)
                .bind(client.logout.backchannel_logout_uri.as_deref())
                .bind(client.require_par)
                .bind(client.keys.jwks.as_deref())
                .bind(client.keys.jwks_uri.as_deref())
                .bind(client.registration_token_hash())
                .bind(client.registered_via())
        }

        /// A refresh token's columns, in `sql::refresh_columns!`'s order (`$1`..`$14` of a
        /// statement that inserts it, or the next fourteen after what is bound before).
        fn bind_refresh<'q>(query: EngineQuery<'q>, token: &'q RefreshToken) -> EngineQuery<'q> {
            query
                .bind(token.token_hash.0.as_slice())
                .bind(&token.family_id)
                .bind(token.parent_hash.as_ref().map(|h| h.0.as_slice()))
                .bind(token.grant_id.as_str())
                .bind(&token.client_id)
                .bind(&token.user_id)
                .bind(token.scope.to_string())
                .bind(&token.audience)
                .bind(token.code_hash.as_ref().map(|h| h.0.as_slice()))
                .bind(token.issued_at.0)
                .bind(token.expires_at.0)
                .bind(token.family_expires_at.0)
                .bind(token.session_hash.as_ref().map(|h| h.0.as_slice()))
                .bind(token.auth_time.map(|t| t.0))
        }

        fn bind_key<'q>(query: EngineQuery<'q>, key: &'q StoredKey) -> EngineQuery<'q> {
            query
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(key.status.as_str())
                .bind(&key.sealed_private_key)
                .bind(&key.public_jwk)
                .bind(key.created_at.0)
                .bind(key.retired_at.map(|t| t.0))
                .bind(key.activates_at.map(|t| t.0))
        }
    };
}

pub(super) use impl_store;

/// A write transaction and, on SQLite, this process's turn to write, held until it ends.
/// It reads and writes as the transaction's connection (`&mut *tx`), as a transaction does.
pub(super) struct WriteTx<Db: sqlx::Database> {
    tx: sqlx::Transaction<'static, Db>,
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<Db: sqlx::Database> WriteTx<Db> {
    pub(super) fn new(
        tx: sqlx::Transaction<'static, Db>,
        turn: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Self { tx, _turn: turn }
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<Db: sqlx::Database> std::ops::Deref for WriteTx<Db> {
    type Target = Db::Connection;
    fn deref(&self) -> &Db::Connection {
        &self.tx
    }
}

impl<Db: sqlx::Database> std::ops::DerefMut for WriteTx<Db> {
    fn deref_mut(&mut self) -> &mut Db::Connection {
        &mut self.tx
    }
}

/// Names the sqlx database of an engine type, for the few helpers that take a query.
pub(super) trait EngineDb {
    type Db: sqlx::Database;
    /// Whether a `WITH` clause may hold an INSERT, UPDATE or DELETE (PostgreSQL, not
    /// SQLite): then a conditional write and its follow-up are one statement.
    const DATA_MODIFYING_WITH: bool;
}
