// @generated automatically by Diesel CLI.

diesel::table! {
    account (id) {
        id -> Text,
        account_id -> Text,
        provider_id -> Text,
        user_id -> Text,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        id_token -> Nullable<Text>,
        access_token_expires_at -> Nullable<Timestamptz>,
        refresh_token_expires_at -> Nullable<Timestamptz>,
        scope -> Nullable<Text>,
        password -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    connections (id) {
        id -> Text,
        owner_id -> Text,
        provider -> Text,
        external_account_id -> Text,
        external_org_id -> Nullable<Text>,
        display_name -> Text,
        account -> Jsonb,
        scopes -> Array<Nullable<Text>>,
        status -> Text,
        access_token -> Text,
        refresh_token -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        refresh_failures -> Int4,
        next_refresh_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jwks (id) {
        id -> Text,
        public_key -> Text,
        private_key -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        alg -> Nullable<Text>,
        crv -> Nullable<Text>,
        published_at -> Nullable<Timestamptz>,
        unpublish_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    oauth_flows (state_hash) {
        state_hash -> Text,
        owner_id -> Text,
        provider -> Text,
        code_verifier -> Text,
        redirect_to -> Nullable<Text>,
        scopes -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    session (id) {
        id -> Text,
        expires_at -> Timestamptz,
        token -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        user_id -> Text,
    }
}

diesel::table! {
    user (id) {
        id -> Text,
        name -> Text,
        email -> Text,
        email_verified -> Bool,
        image -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    verification (id) {
        id -> Text,
        identifier -> Text,
        value -> Text,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(account -> user (user_id));
diesel::joinable!(connections -> user (owner_id));
diesel::joinable!(session -> user (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account,
    connections,
    jwks,
    oauth_flows,
    session,
    user,
    verification,
);
