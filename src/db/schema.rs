//! Diesel table definitions, written with portable SQL types only so one schema serves
//! PostgreSQL and SQLite (see `migrations/postgres` and `migrations/sqlite`).

diesel::table! {
    workspaces (id) {
        id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    whatsapp_accounts (id) {
        id -> Text,
        workspace_id -> Text,
        waba_id -> Text,
        name -> Nullable<Text>,
        access_token_enc -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        status -> Text,
        last_synced_at -> Nullable<Timestamp>,
        last_sync_error -> Nullable<Text>,
        last_sync_counts -> Nullable<Text>,
        sync_lease_until -> Nullable<Timestamp>,
        sync_lease_owner -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        next_sync_at -> Nullable<Timestamp>,
        last_sync_failed_at -> Nullable<Timestamp>,
        last_sync_failure -> Nullable<Text>,
    }
}

diesel::table! {
    agents (id) {
        id -> Text,
        workspace_id -> Text,
        name -> Text,
        name_key -> Text,
        description -> Nullable<Text>,
        responder_kind -> Text,
        responder_config -> Text,
        responder_secret_enc -> Nullable<Text>,
        outbound_number_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    phone_numbers (id) {
        id -> Text,
        workspace_id -> Text,
        whatsapp_account_id -> Text,
        meta_phone_number_id -> Text,
        display_phone_number -> Text,
        display_digits -> Text,
        verified_name -> Nullable<Text>,
        verified_name_key -> Text,
        platform_type -> Text,
        quality_rating -> Text,
        quality_rank -> Text,
        status -> Nullable<Text>,
        code_verification_status -> Nullable<Text>,
        name_status -> Nullable<Text>,
        messaging_limit -> Nullable<Text>,
        throughput_level -> Nullable<Text>,
        account_mode -> Nullable<Text>,
        is_on_biz_app -> Bool,
        inbound_agent_id -> Nullable<Text>,
        registration_state -> Text,
        registration_last_error -> Nullable<Text>,
        registration_last_error_code -> Nullable<BigInt>,
        registration_last_attempt_at -> Nullable<Timestamp>,
        registration_lease_until -> Nullable<Timestamp>,
        registration_lease_owner -> Nullable<Text>,
        pin_enc -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamp>,
        removed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        quality_alert -> Nullable<Text>,
    }
}

diesel::table! {
    registration_attempts (id) {
        id -> Text,
        workspace_id -> Text,
        number_id -> Text,
        actor -> Text,
        outcome -> Text,
        meta_code -> Nullable<BigInt>,
        meta_subcode -> Nullable<BigInt>,
        meta_message -> Nullable<Text>,
        fbtrace_id -> Nullable<Text>,
        created_at -> Timestamp,
        meta_unavailable -> Bool,
    }
}

diesel::table! {
    quality_events (id) {
        id -> Text,
        workspace_id -> Text,
        number_id -> Text,
        old_rating -> Nullable<Text>,
        new_rating -> Text,
        source -> Text,
        event -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        workspace_id -> Text,
        actor -> Text,
        action -> Text,
        number_id -> Nullable<Text>,
        agent_id -> Nullable<Text>,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    waba_usage (waba_id) {
        waba_id -> Text,
        used_percent -> BigInt,
        regain_at -> Nullable<Timestamp>,
        reported_at -> Timestamp,
    }
}

diesel::table! {
    graph_calls (id) {
        id -> Text,
        waba_id -> Text,
        called_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    workspaces,
    whatsapp_accounts,
    agents,
    phone_numbers,
    registration_attempts,
    quality_events,
    audit_events,
    graph_calls,
    waba_usage,
    webhook_jobs,
    customers,
    conversations,
    messages,
    idempotency_keys,
    events,
);

diesel::table! {
    webhook_jobs (id) {
        id -> BigInt,
        dedup_key -> Text,
        kind -> Text,
        waba_id -> Nullable<Text>,
        meta_phone_number_id -> Nullable<Text>,
        order_key -> Nullable<Text>,
        payload -> Text,
        state -> Text,
        attempts -> BigInt,
        run_after -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        received_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    customers (id) {
        id -> Text,
        workspace_id -> Text,
        user_id -> Nullable<Text>,
        phone -> Nullable<Text>,
        profile_name -> Nullable<Text>,
        username -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    conversations (id) {
        id -> Text,
        workspace_id -> Text,
        number_id -> Text,
        customer_id -> Text,
        last_inbound_at -> Nullable<Timestamp>,
        last_message_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        workspace_id -> Text,
        conversation_id -> Text,
        direction -> Text,
        wamid -> Nullable<Text>,
        kind -> Text,
        body -> Nullable<Text>,
        reply_to_id -> Nullable<Text>,
        part -> BigInt,
        agent_id -> Nullable<Text>,
        status -> Text,
        error_code -> Nullable<BigInt>,
        error_message -> Nullable<Text>,
        meta_timestamp -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        template -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        workspace_id -> Text,
        kind -> Text,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    send_pacing (pace_key) {
        pace_key -> Text,
        tat -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (workspace_id, operation, idempotency_key) {
        workspace_id -> Text,
        operation -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        response_status -> Nullable<BigInt>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}
