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
    agent_events (id) {
        id -> Int8,
        run_id -> Text,
        event_type -> Text,
        data -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    agent_runs (id) {
        id -> Text,
        owner_id -> Text,
        status -> Text,
        prompt -> Text,
        model -> Text,
        options -> Jsonb,
        tool_table -> Nullable<Jsonb>,
        turns -> Int4,
        usage -> Jsonb,
        stop_reason -> Nullable<Text>,
        final_text -> Nullable<Text>,
        error -> Nullable<Text>,
        cancel_requested -> Bool,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    agent_steps (id) {
        id -> Int8,
        run_id -> Text,
        turn -> Int4,
        kind -> Text,
        status -> Text,
        content -> Nullable<Jsonb>,
        stop_reason -> Nullable<Text>,
        usage -> Nullable<Jsonb>,
        request_id -> Nullable<Text>,
        tool_use_id -> Nullable<Text>,
        tool_name -> Nullable<Text>,
        input -> Nullable<Jsonb>,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        duration_ms -> Nullable<Int4>,
    }
}

diesel::table! {
    connection_events (cursor) {
        cursor -> Int8,
        event_id -> Int8,
        connection_id -> Text,
        owner_id -> Text,
        provider -> Text,
        event_type -> Text,
        created_at -> Timestamptz,
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
    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        priority -> Int4,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        locked_by -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        last_error -> Nullable<Text>,
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
    linear_agent_activities (id) {
        id -> Text,
        session_id -> Text,
        kind -> Text,
        posted_at -> Timestamptz,
    }
}

diesel::table! {
    linear_agent_session_runs (run_id) {
        run_id -> Text,
        session_id -> Text,
        event_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    linear_agent_sessions (id) {
        id -> Text,
        connection_id -> Text,
        owner_id -> Text,
        issue_id -> Nullable<Text>,
        run_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mcp_auth_flows (state_hash) {
        state_hash -> Text,
        owner_id -> Text,
        server_id -> Text,
        issuer -> Text,
        token_endpoint -> Text,
        client_id -> Text,
        resource -> Text,
        scopes -> Array<Nullable<Text>>,
        code_verifier -> Text,
        redirect_to -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mcp_credentials (server_id) {
        server_id -> Text,
        issuer -> Nullable<Text>,
        access_token -> Text,
        refresh_token -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        scopes -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        token_endpoint -> Nullable<Text>,
        client_id -> Nullable<Text>,
        resource -> Nullable<Text>,
        wanted_scopes -> Array<Nullable<Text>>,
        refresh_claim -> Nullable<Text>,
        refresh_claim_expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mcp_oauth_clients (issuer, redirect_uri) {
        issuer -> Text,
        redirect_uri -> Text,
        client_id -> Text,
        client_secret -> Nullable<Text>,
        token_endpoint_auth_method -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    mcp_servers (id) {
        id -> Text,
        owner_id -> Text,
        name -> Text,
        url -> Text,
        provider -> Nullable<Text>,
        connection_id -> Nullable<Text>,
        era -> Nullable<Text>,
        protocol_version -> Nullable<Text>,
        needs_authorization -> Bool,
        server_info -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mcp_tool_calls (id) {
        id -> Int8,
        owner_id -> Text,
        server_id -> Text,
        tool -> Text,
        started_at -> Timestamptz,
        duration_ms -> Int4,
        ok -> Bool,
        error -> Nullable<Text>,
        arguments -> Nullable<Jsonb>,
        result -> Nullable<Jsonb>,
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
    pending_grants (code_hash) {
        code_hash -> Text,
        owner_id -> Text,
        kind -> Text,
        subject -> Text,
        payload -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    rate_limit (id) {
        id -> Text,
        key -> Text,
        count -> Int4,
        last_request -> Int8,
    }
}

diesel::table! {
    refresh_claims (connection_id) {
        connection_id -> Text,
        claim -> Text,
        expires_at -> Timestamptz,
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

diesel::table! {
    webhook_events (id) {
        id -> Int8,
        provider -> Text,
        delivery_id -> Text,
        event_type -> Text,
        action -> Nullable<Text>,
        payload -> Jsonb,
        received_at -> Timestamptz,
        status -> Text,
        matched -> Int4,
        routed_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(account -> user (user_id));
diesel::joinable!(agent_events -> agent_runs (run_id));
diesel::joinable!(agent_runs -> user (owner_id));
diesel::joinable!(agent_steps -> agent_runs (run_id));
diesel::joinable!(connection_events -> connections (connection_id));
diesel::joinable!(connection_events -> webhook_events (event_id));
diesel::joinable!(connections -> user (owner_id));
diesel::joinable!(linear_agent_activities -> linear_agent_sessions (session_id));
diesel::joinable!(linear_agent_session_runs -> agent_runs (run_id));
diesel::joinable!(linear_agent_session_runs -> linear_agent_sessions (session_id));
diesel::joinable!(linear_agent_sessions -> agent_runs (run_id));
diesel::joinable!(linear_agent_sessions -> connections (connection_id));
diesel::joinable!(linear_agent_sessions -> user (owner_id));
diesel::joinable!(mcp_auth_flows -> mcp_servers (server_id));
diesel::joinable!(mcp_auth_flows -> user (owner_id));
diesel::joinable!(mcp_credentials -> mcp_servers (server_id));
diesel::joinable!(mcp_servers -> connections (connection_id));
diesel::joinable!(mcp_servers -> user (owner_id));
diesel::joinable!(oauth_flows -> user (owner_id));
diesel::joinable!(pending_grants -> user (owner_id));
diesel::joinable!(refresh_claims -> connections (connection_id));
diesel::joinable!(session -> user (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account,
    agent_events,
    agent_runs,
    agent_steps,
    connection_events,
    connections,
    jobs,
    jwks,
    linear_agent_activities,
    linear_agent_session_runs,
    linear_agent_sessions,
    mcp_auth_flows,
    mcp_credentials,
    mcp_oauth_clients,
    mcp_servers,
    mcp_tool_calls,
    oauth_flows,
    pending_grants,
    rate_limit,
    refresh_claims,
    session,
    user,
    verification,
    webhook_events,
);
