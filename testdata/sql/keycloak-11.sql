-- keycloak-11.sql: a small Keycloak 11.0.3 (Alfresco Identity Service 1.3) database.
--
-- Run it as the database owner (a non-superuser), e.g. `SET ROLE keycloak;` first or
-- `psql "postgres://keycloak@…/db" -f keycloak-11.sql`. It creates everything in the public
-- schema; nothing in it needs a superuser (no extensions, no ALTER … OWNER).
--
-- Shape. The Keycloak tables, columns, types, defaults and constraint names below are
-- Keycloak 11's own on PostgreSQL (Liquibase changelogs up to jpa-changelog-11.0.0.xml),
-- limited to the tables the tests care about. Two foreign keys Keycloak 11 already dropped
-- (realm.master_admin_client and keycloak_role.client, changeset 11.0.0 map-remove-ri) are
-- absent; the ones Keycloak 12 drops are present. databasechangelog has no primary key,
-- exactly like Liquibase's own table.
--
-- History it pretends to have: installed by Keycloak 10.0.2 on 2020-07-02 (changelog rows
-- 1-85, one Liquibase deployment), upgraded to Keycloak 11.0.3 on 2021-02-09 (row 86). The
-- changelog ids, authors, files, exec types, checksums and descriptions are copied from a real
-- Keycloak database; the dates and deployment ids (Liquibase's epoch-millis tail) are made up
-- to match that history.
--
-- Data. Deterministic: ids are md5-derived v4-looking UUIDs, bytes come from sha256 chains,
-- times are fixed epoch values. No random(), no now(): the same file gives the same
-- rows, byte for byte, on every run, so dumps and checksums of it are stable.
--
-- Fixture devices (not what Keycloak itself would write):
--   * credential.salt (bytea) is NULL for every credential Keycloak >= 8 writes; a subset of
--     rows carries a 16-byte salt here so that a real Keycloak bytea column holds data,
--     including 0x00 bytes.
--   * Keycloak uses varchar UUID ids and creates no sequences, views or functions. The
--     site_* objects at the end stand for customisations a site added to its Keycloak
--     database: a bytea table (site_branding), a bigserial table (site_login_stats) and an
--     explicit sequence, both moved on with setval, a plpgsql function and a view.

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET search_path = public;

BEGIN;

-- Helpers for deterministic data; temporary, gone when the session ends.
CREATE OR REPLACE FUNCTION pg_temp.fx_id(seed text) RETURNS varchar
LANGUAGE sql IMMUTABLE AS $$
  SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
      || substr('89ab', 1 + (('x' || substr(h, 17, 1))::bit(4)::int % 4), 1) || substr(h, 18, 3)
      || '-' || substr(h, 21, 12)
  FROM md5(seed) AS h
$$;

CREATE OR REPLACE FUNCTION pg_temp.fx_bytes(seed text, n integer) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
  SELECT substring(string_agg(sha256(convert_to(seed || ':' || g, 'UTF8')), ''::bytea ORDER BY g) FROM 1 FOR n)
  FROM generate_series(1, (n + 31) / 32) AS g
$$;

CREATE OR REPLACE FUNCTION pg_temp.fx_b64(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT replace(encode(b, 'base64'), E'\n', '') $$;

-- ---------------------------------------------------------------------------------------
-- Liquibase's tables
-- ---------------------------------------------------------------------------------------

CREATE TABLE databasechangelog (
    id character varying(255) NOT NULL,
    author character varying(255) NOT NULL,
    filename character varying(255) NOT NULL,
    dateexecuted timestamp without time zone NOT NULL,
    orderexecuted integer NOT NULL,
    exectype character varying(10) NOT NULL,
    md5sum character varying(35),
    description character varying(255),
    comments character varying(255),
    tag character varying(255),
    liquibase character varying(20),
    contexts character varying(255),
    labels character varying(255),
    deployment_id character varying(10)
);

CREATE TABLE databasechangeloglock (
    id integer NOT NULL,
    locked boolean NOT NULL,
    lockgranted timestamp without time zone,
    lockedby character varying(255)
);

-- ---------------------------------------------------------------------------------------
-- Keycloak 11 tables
-- ---------------------------------------------------------------------------------------

CREATE TABLE realm (
    id character varying(36) NOT NULL,
    access_code_lifespan integer,
    user_action_lifespan integer,
    access_token_lifespan integer,
    account_theme character varying(255),
    admin_theme character varying(255),
    email_theme character varying(255),
    enabled boolean DEFAULT false NOT NULL,
    events_enabled boolean DEFAULT false NOT NULL,
    events_expiration bigint,
    login_theme character varying(255),
    name character varying(255),
    not_before integer,
    password_policy character varying(2550),
    registration_allowed boolean DEFAULT false NOT NULL,
    remember_me boolean DEFAULT false NOT NULL,
    reset_password_allowed boolean DEFAULT false NOT NULL,
    social boolean DEFAULT false NOT NULL,
    ssl_required character varying(255),
    sso_idle_timeout integer,
    sso_max_lifespan integer,
    update_profile_on_soc_login boolean DEFAULT false NOT NULL,
    verify_email boolean DEFAULT false NOT NULL,
    master_admin_client character varying(36),
    login_lifespan integer,
    internationalization_enabled boolean DEFAULT false NOT NULL,
    default_locale character varying(255),
    reg_email_as_username boolean DEFAULT false NOT NULL,
    admin_events_enabled boolean DEFAULT false NOT NULL,
    admin_events_details_enabled boolean DEFAULT false NOT NULL,
    edit_username_allowed boolean DEFAULT false NOT NULL,
    otp_policy_counter integer DEFAULT 0,
    otp_policy_window integer DEFAULT 1,
    otp_policy_period integer DEFAULT 30,
    otp_policy_digits integer DEFAULT 6,
    otp_policy_alg character varying(36) DEFAULT 'HmacSHA1'::character varying,
    otp_policy_type character varying(36) DEFAULT 'totp'::character varying,
    browser_flow character varying(36),
    registration_flow character varying(36),
    direct_grant_flow character varying(36),
    reset_credentials_flow character varying(36),
    client_auth_flow character varying(36),
    offline_session_idle_timeout integer DEFAULT 0,
    revoke_refresh_token boolean DEFAULT false NOT NULL,
    access_token_life_implicit integer DEFAULT 0,
    login_with_email_allowed boolean DEFAULT true NOT NULL,
    duplicate_emails_allowed boolean DEFAULT false NOT NULL,
    docker_auth_flow character varying(36),
    refresh_token_max_reuse integer DEFAULT 0,
    allow_user_managed_access boolean DEFAULT false NOT NULL,
    sso_max_lifespan_remember_me integer DEFAULT 0 NOT NULL,
    sso_idle_timeout_remember_me integer DEFAULT 0 NOT NULL
);

CREATE TABLE realm_attribute (
    name character varying(255) NOT NULL,
    realm_id character varying(36) NOT NULL,
    value character varying(255)
);

CREATE TABLE realm_events_listeners (
    realm_id character varying(36) NOT NULL,
    value character varying(255) NOT NULL
);

CREATE TABLE client (
    id character varying(36) NOT NULL,
    enabled boolean DEFAULT false NOT NULL,
    full_scope_allowed boolean DEFAULT false NOT NULL,
    client_id character varying(255),
    not_before integer,
    public_client boolean DEFAULT false NOT NULL,
    secret character varying(255),
    base_url character varying(255),
    bearer_only boolean DEFAULT false NOT NULL,
    management_url character varying(255),
    surrogate_auth_required boolean DEFAULT false NOT NULL,
    realm_id character varying(36),
    protocol character varying(255),
    node_rereg_timeout integer DEFAULT 0,
    frontchannel_logout boolean DEFAULT false NOT NULL,
    consent_required boolean DEFAULT false NOT NULL,
    name character varying(255),
    service_accounts_enabled boolean DEFAULT false NOT NULL,
    client_authenticator_type character varying(255),
    root_url character varying(255),
    description character varying(255),
    registration_token character varying(255),
    standard_flow_enabled boolean DEFAULT true NOT NULL,
    implicit_flow_enabled boolean DEFAULT false NOT NULL,
    direct_access_grants_enabled boolean DEFAULT false NOT NULL,
    always_display_in_console boolean DEFAULT false NOT NULL
);

CREATE TABLE client_attributes (
    client_id character varying(36) NOT NULL,
    value character varying(4000),
    name character varying(255) NOT NULL
);

CREATE TABLE redirect_uris (
    client_id character varying(36) NOT NULL,
    value character varying(255) NOT NULL
);

CREATE TABLE keycloak_role (
    id character varying(36) NOT NULL,
    client_realm_constraint character varying(255),
    client_role boolean DEFAULT false NOT NULL,
    description character varying(255),
    name character varying(255),
    realm_id character varying(255),
    client character varying(36),
    realm character varying(36)
);

CREATE TABLE composite_role (
    composite character varying(36) NOT NULL,
    child_role character varying(36) NOT NULL
);

CREATE TABLE realm_default_roles (
    realm_id character varying(36) NOT NULL,
    role_id character varying(36) NOT NULL
);

CREATE TABLE client_default_roles (
    client_id character varying(36) NOT NULL,
    role_id character varying(36) NOT NULL
);

CREATE TABLE scope_mapping (
    client_id character varying(36) NOT NULL,
    role_id character varying(36) NOT NULL
);

CREATE TABLE keycloak_group (
    id character varying(36) NOT NULL,
    name character varying(255),
    parent_group character varying(36) NOT NULL,
    realm_id character varying(36)
);

CREATE TABLE group_role_mapping (
    role_id character varying(36) NOT NULL,
    group_id character varying(36) NOT NULL
);

CREATE TABLE realm_default_groups (
    realm_id character varying(36) NOT NULL,
    group_id character varying(36) NOT NULL
);

CREATE TABLE user_entity (
    id character varying(36) NOT NULL,
    email character varying(255),
    email_constraint character varying(255),
    email_verified boolean DEFAULT false NOT NULL,
    enabled boolean DEFAULT false NOT NULL,
    federation_link character varying(255),
    first_name character varying(255),
    last_name character varying(255),
    realm_id character varying(255),
    username character varying(255),
    created_timestamp bigint,
    service_account_client_link character varying(255),
    not_before integer DEFAULT 0 NOT NULL
);

CREATE TABLE user_attribute (
    name character varying(255) NOT NULL,
    value character varying(255),
    user_id character varying(36) NOT NULL,
    id character varying(36) DEFAULT 'sybase-needs-something-here'::character varying NOT NULL
);

CREATE TABLE credential (
    id character varying(36) NOT NULL,
    salt bytea,
    type character varying(255),
    user_id character varying(36),
    created_date bigint,
    user_label character varying(255),
    secret_data text,
    credential_data text,
    priority integer
);

CREATE TABLE user_role_mapping (
    role_id character varying(255) NOT NULL,
    user_id character varying(36) NOT NULL
);

CREATE TABLE user_group_membership (
    group_id character varying(36) NOT NULL,
    user_id character varying(36) NOT NULL
);

CREATE TABLE user_required_action (
    user_id character varying(36) NOT NULL,
    required_action character varying(255) DEFAULT ' '::character varying NOT NULL
);

CREATE TABLE required_action_provider (
    id character varying(36) NOT NULL,
    alias character varying(255),
    name character varying(255),
    realm_id character varying(36),
    enabled boolean DEFAULT false NOT NULL,
    default_action boolean DEFAULT false NOT NULL,
    provider_id character varying(255),
    priority integer
);

CREATE TABLE component (
    id character varying(36) NOT NULL,
    name character varying(255),
    parent_id character varying(36),
    provider_id character varying(36),
    provider_type character varying(255),
    realm_id character varying(36),
    sub_type character varying(255)
);

CREATE TABLE component_config (
    id character varying(36) NOT NULL,
    component_id character varying(36) NOT NULL,
    name character varying(255) NOT NULL,
    value character varying(4000)
);

CREATE TABLE event_entity (
    id character varying(36) NOT NULL,
    client_id character varying(255),
    details_json character varying(2550),
    error character varying(255),
    ip_address character varying(255),
    realm_id character varying(255),
    session_id character varying(255),
    event_time bigint,
    type character varying(255),
    user_id character varying(255)
);

CREATE TABLE admin_event_entity (
    id character varying(36) NOT NULL,
    admin_event_time bigint,
    realm_id character varying(255),
    operation_type character varying(255),
    auth_realm_id character varying(255),
    auth_client_id character varying(255),
    auth_user_id character varying(255),
    ip_address character varying(255),
    resource_path character varying(2550),
    representation text,
    error character varying(255),
    resource_type character varying(64)
);

CREATE TABLE migration_model (
    id character varying(36) NOT NULL,
    version character varying(36),
    update_time bigint DEFAULT 0 NOT NULL
);

-- ---------------------------------------------------------------------------------------
-- Data: Liquibase
-- ---------------------------------------------------------------------------------------

INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum,
    description, comments, tag, liquibase, contexts, labels, deployment_id)
SELECT v.id, v.author, v.filename,
    CASE WHEN v.n <= 85
        THEN timestamp '2020-07-02 08:15:31.612' + (v.n * 47 + v.n * v.n % 31) * interval '1 millisecond'
        ELSE timestamp '2021-02-09 14:03:49.023' END,
    v.n, v.exectype, v.md5sum, v.description, '', NULL, '3.5.4', NULL, NULL,
    CASE WHEN v.n <= 85 THEN '3677731406' ELSE '2879428752' END
FROM (VALUES
    (1, '1.0.0.Final-KEYCLOAK-5461', 'sthorger@redhat.com', 'META-INF/jpa-changelog-1.0.0.Final.xml', 'EXECUTED', '7:4e70412f24a3f382c82183742ec79317', 'createTable tableName=APPLICATION_DEFAULT_ROLES; createTable tableName=CLIENT; createTable tableName=CLIENT_SESSION; createTable tableName=CLIENT_SESSION_ROLE; createTable tableName=COMPOSITE_ROLE; createTable tableName=CREDENTIAL; createTable tab...'),
    (2, '1.0.0.Final-KEYCLOAK-5461', 'sthorger@redhat.com', 'META-INF/db2-jpa-changelog-1.0.0.Final.xml', 'MARK_RAN', '7:cb16724583e9675711801c6875114f28', 'createTable tableName=APPLICATION_DEFAULT_ROLES; createTable tableName=CLIENT; createTable tableName=CLIENT_SESSION; createTable tableName=CLIENT_SESSION_ROLE; createTable tableName=COMPOSITE_ROLE; createTable tableName=CREDENTIAL; createTable tab...'),
    (3, '1.1.0.Beta1', 'sthorger@redhat.com', 'META-INF/jpa-changelog-1.1.0.Beta1.xml', 'EXECUTED', '7:0310eb8ba07cec616460794d42ade0fa', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION; createTable tableName=CLIENT_ATTRIBUTES; createTable tableName=CLIENT_SESSION_NOTE; createTable tableName=APP_NODE_REGISTRATIONS; addColumn table...'),
    (4, '1.1.0.Final', 'sthorger@redhat.com', 'META-INF/jpa-changelog-1.1.0.Final.xml', 'EXECUTED', '7:5d25857e708c3233ef4439df1f93f012', 'renameColumn newColumnName=EVENT_TIME, oldColumnName=TIME, tableName=EVENT_ENTITY'),
    (5, '1.2.0.Beta1', 'psilva@redhat.com', 'META-INF/jpa-changelog-1.2.0.Beta1.xml', 'EXECUTED', '7:c7a54a1041d58eb3817a4a883b4d4e84', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION; createTable tableName=PROTOCOL_MAPPER; createTable tableName=PROTOCOL_MAPPER_CONFIG; createTable tableName=...'),
    (6, '1.2.0.Beta1', 'psilva@redhat.com', 'META-INF/db2-jpa-changelog-1.2.0.Beta1.xml', 'MARK_RAN', '7:2e01012df20974c1c2a605ef8afe25b7', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION; createTable tableName=PROTOCOL_MAPPER; createTable tableName=PROTOCOL_MAPPER_CONFIG; createTable tableName=...'),
    (7, '1.2.0.RC1', 'bburke@redhat.com', 'META-INF/jpa-changelog-1.2.0.CR1.xml', 'EXECUTED', '7:0f08df48468428e0f30ee59a8ec01a41', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete tableName=USER_SESSION; createTable tableName=MIGRATION_MODEL; createTable tableName=IDENTITY_P...'),
    (8, '1.2.0.RC1', 'bburke@redhat.com', 'META-INF/db2-jpa-changelog-1.2.0.CR1.xml', 'MARK_RAN', '7:a77ea2ad226b345e7d689d366f185c8c', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete tableName=USER_SESSION; createTable tableName=MIGRATION_MODEL; createTable tableName=IDENTITY_P...'),
    (9, '1.2.0.Final', 'keycloak', 'META-INF/jpa-changelog-1.2.0.Final.xml', 'EXECUTED', '7:a3377a2059aefbf3b90ebb4c4cc8e2ab', 'update tableName=CLIENT; update tableName=CLIENT; update tableName=CLIENT'),
    (10, '1.3.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-1.3.0.xml', 'EXECUTED', '7:04c1dbedc2aa3e9756d1a1668e003451', 'delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_PROT_MAPPER; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete tableName=USER_SESSION; createTable tableName=ADMI...'),
    (11, '1.4.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-1.4.0.xml', 'EXECUTED', '7:36ef39ed560ad07062d956db861042ba', 'delete tableName=CLIENT_SESSION_AUTH_STATUS; delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_PROT_MAPPER; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete table...'),
    (12, '1.4.0', 'bburke@redhat.com', 'META-INF/db2-jpa-changelog-1.4.0.xml', 'MARK_RAN', '7:d909180b2530479a716d3f9c9eaea3d7', 'delete tableName=CLIENT_SESSION_AUTH_STATUS; delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_PROT_MAPPER; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete table...'),
    (13, '1.5.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-1.5.0.xml', 'EXECUTED', '7:cf12b04b79bea5152f165eb41f3955f6', 'delete tableName=CLIENT_SESSION_AUTH_STATUS; delete tableName=CLIENT_SESSION_ROLE; delete tableName=CLIENT_SESSION_PROT_MAPPER; delete tableName=CLIENT_SESSION_NOTE; delete tableName=CLIENT_SESSION; delete tableName=USER_SESSION_NOTE; delete table...'),
    (14, '1.6.1_from15', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.6.1.xml', 'EXECUTED', '7:7e32c8f05c755e8675764e7d5f514509', 'addColumn tableName=REALM; addColumn tableName=KEYCLOAK_ROLE; addColumn tableName=CLIENT; createTable tableName=OFFLINE_USER_SESSION; createTable tableName=OFFLINE_CLIENT_SESSION; addPrimaryKey constraintName=CONSTRAINT_OFFL_US_SES_PK2, tableName=...'),
    (15, '1.6.1_from16-pre', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.6.1.xml', 'MARK_RAN', '7:980ba23cc0ec39cab731ce903dd01291', 'delete tableName=OFFLINE_CLIENT_SESSION; delete tableName=OFFLINE_USER_SESSION'),
    (16, '1.6.1_from16', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.6.1.xml', 'MARK_RAN', '7:2fa220758991285312eb84f3b4ff5336', 'dropPrimaryKey constraintName=CONSTRAINT_OFFLINE_US_SES_PK, tableName=OFFLINE_USER_SESSION; dropPrimaryKey constraintName=CONSTRAINT_OFFLINE_CL_SES_PK, tableName=OFFLINE_CLIENT_SESSION; addColumn tableName=OFFLINE_USER_SESSION; update tableName=OF...'),
    (17, '1.6.1', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.6.1.xml', 'EXECUTED', '7:d41d8cd98f00b204e9800998ecf8427e', 'empty'),
    (18, '1.7.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-1.7.0.xml', 'EXECUTED', '7:91ace540896df890cc00a0490ee52bbc', 'createTable tableName=KEYCLOAK_GROUP; createTable tableName=GROUP_ROLE_MAPPING; createTable tableName=GROUP_ATTRIBUTE; createTable tableName=USER_GROUP_MEMBERSHIP; createTable tableName=REALM_DEFAULT_GROUPS; addColumn tableName=IDENTITY_PROVIDER; ...'),
    (19, '1.8.0', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.8.0.xml', 'EXECUTED', '7:c31d1646dfa2618a9335c00e07f89f24', 'addColumn tableName=IDENTITY_PROVIDER; createTable tableName=CLIENT_TEMPLATE; createTable tableName=CLIENT_TEMPLATE_ATTRIBUTES; createTable tableName=TEMPLATE_SCOPE_MAPPING; dropNotNullConstraint columnName=CLIENT_ID, tableName=PROTOCOL_MAPPER; ad...'),
    (20, '1.8.0-2', 'keycloak', 'META-INF/jpa-changelog-1.8.0.xml', 'EXECUTED', '7:df8bc21027a4f7cbbb01f6344e89ce07', 'dropDefaultValue columnName=ALGORITHM, tableName=CREDENTIAL; update tableName=CREDENTIAL'),
    (21, '1.8.0', 'mposolda@redhat.com', 'META-INF/db2-jpa-changelog-1.8.0.xml', 'MARK_RAN', '7:f987971fe6b37d963bc95fee2b27f8df', 'addColumn tableName=IDENTITY_PROVIDER; createTable tableName=CLIENT_TEMPLATE; createTable tableName=CLIENT_TEMPLATE_ATTRIBUTES; createTable tableName=TEMPLATE_SCOPE_MAPPING; dropNotNullConstraint columnName=CLIENT_ID, tableName=PROTOCOL_MAPPER; ad...'),
    (22, '1.8.0-2', 'keycloak', 'META-INF/db2-jpa-changelog-1.8.0.xml', 'MARK_RAN', '7:df8bc21027a4f7cbbb01f6344e89ce07', 'dropDefaultValue columnName=ALGORITHM, tableName=CREDENTIAL; update tableName=CREDENTIAL'),
    (23, '1.9.0', 'mposolda@redhat.com', 'META-INF/jpa-changelog-1.9.0.xml', 'EXECUTED', '7:ed2dc7f799d19ac452cbcda56c929e47', 'update tableName=REALM; update tableName=REALM; update tableName=REALM; update tableName=REALM; update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=REALM; update tableName=REALM; customChange; dr...'),
    (24, '1.9.1', 'keycloak', 'META-INF/jpa-changelog-1.9.1.xml', 'EXECUTED', '7:80b5db88a5dda36ece5f235be8757615', 'modifyDataType columnName=PRIVATE_KEY, tableName=REALM; modifyDataType columnName=PUBLIC_KEY, tableName=REALM; modifyDataType columnName=CERTIFICATE, tableName=REALM'),
    (25, '1.9.1', 'keycloak', 'META-INF/db2-jpa-changelog-1.9.1.xml', 'MARK_RAN', '7:1437310ed1305a9b93f8848f301726ce', 'modifyDataType columnName=PRIVATE_KEY, tableName=REALM; modifyDataType columnName=CERTIFICATE, tableName=REALM'),
    (26, '1.9.2', 'keycloak', 'META-INF/jpa-changelog-1.9.2.xml', 'EXECUTED', '7:b82ffb34850fa0836be16deefc6a87c4', 'createIndex indexName=IDX_USER_EMAIL, tableName=USER_ENTITY; createIndex indexName=IDX_USER_ROLE_MAPPING, tableName=USER_ROLE_MAPPING; createIndex indexName=IDX_USER_GROUP_MAPPING, tableName=USER_GROUP_MEMBERSHIP; createIndex indexName=IDX_USER_CO...'),
    (27, 'authz-2.0.0', 'psilva@redhat.com', 'META-INF/jpa-changelog-authz-2.0.0.xml', 'EXECUTED', '7:9cc98082921330d8d9266decdd4bd658', 'createTable tableName=RESOURCE_SERVER; addPrimaryKey constraintName=CONSTRAINT_FARS, tableName=RESOURCE_SERVER; addUniqueConstraint constraintName=UK_AU8TT6T700S9V50BU18WS5HA6, tableName=RESOURCE_SERVER; createTable tableName=RESOURCE_SERVER_RESOU...'),
    (28, 'authz-2.5.1', 'psilva@redhat.com', 'META-INF/jpa-changelog-authz-2.5.1.xml', 'EXECUTED', '7:03d64aeed9cb52b969bd30a7ac0db57e', 'update tableName=RESOURCE_SERVER_POLICY'),
    (29, '2.1.0-KEYCLOAK-5461', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.1.0.xml', 'EXECUTED', '7:f1f9fd8710399d725b780f463c6b21cd', 'createTable tableName=BROKER_LINK; createTable tableName=FED_USER_ATTRIBUTE; createTable tableName=FED_USER_CONSENT; createTable tableName=FED_USER_CONSENT_ROLE; createTable tableName=FED_USER_CONSENT_PROT_MAPPER; createTable tableName=FED_USER_CR...'),
    (30, '2.2.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.2.0.xml', 'EXECUTED', '7:53188c3eb1107546e6f765835705b6c1', 'addColumn tableName=ADMIN_EVENT_ENTITY; createTable tableName=CREDENTIAL_ATTRIBUTE; createTable tableName=FED_CREDENTIAL_ATTRIBUTE; modifyDataType columnName=VALUE, tableName=CREDENTIAL; addForeignKeyConstraint baseTableName=FED_CREDENTIAL_ATTRIBU...'),
    (31, '2.3.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.3.0.xml', 'EXECUTED', '7:d6e6f3bc57a0c5586737d1351725d4d4', 'createTable tableName=FEDERATED_USER; addPrimaryKey constraintName=CONSTR_FEDERATED_USER, tableName=FEDERATED_USER; dropDefaultValue columnName=TOTP, tableName=USER_ENTITY; dropColumn columnName=TOTP, tableName=USER_ENTITY; addColumn tableName=IDE...'),
    (32, '2.4.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.4.0.xml', 'EXECUTED', '7:454d604fbd755d9df3fd9c6329043aa5', 'customChange'),
    (33, '2.5.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.5.0.xml', 'EXECUTED', '7:57e98a3077e29caf562f7dbf80c72600', 'customChange; modifyDataType columnName=USER_ID, tableName=OFFLINE_USER_SESSION'),
    (34, '2.5.0-unicode-oracle', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-2.5.0.xml', 'MARK_RAN', '7:e4c7e8f2256210aee71ddc42f538b57a', 'modifyDataType columnName=DESCRIPTION, tableName=AUTHENTICATION_FLOW; modifyDataType columnName=DESCRIPTION, tableName=CLIENT_TEMPLATE; modifyDataType columnName=DESCRIPTION, tableName=RESOURCE_SERVER_POLICY; modifyDataType columnName=DESCRIPTION,...'),
    (35, '2.5.0-unicode-other-dbs', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-2.5.0.xml', 'EXECUTED', '7:09a43c97e49bc626460480aa1379b522', 'modifyDataType columnName=DESCRIPTION, tableName=AUTHENTICATION_FLOW; modifyDataType columnName=DESCRIPTION, tableName=CLIENT_TEMPLATE; modifyDataType columnName=DESCRIPTION, tableName=RESOURCE_SERVER_POLICY; modifyDataType columnName=DESCRIPTION,...'),
    (36, '2.5.0-duplicate-email-support', 'slawomir@dabek.name', 'META-INF/jpa-changelog-2.5.0.xml', 'EXECUTED', '7:26bfc7c74fefa9126f2ce702fb775553', 'addColumn tableName=REALM'),
    (37, '2.5.0-unique-group-names', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-2.5.0.xml', 'EXECUTED', '7:a161e2ae671a9020fff61e996a207377', 'addUniqueConstraint constraintName=SIBLING_NAMES, tableName=KEYCLOAK_GROUP'),
    (38, '2.5.1', 'bburke@redhat.com', 'META-INF/jpa-changelog-2.5.1.xml', 'EXECUTED', '7:37fc1781855ac5388c494f1442b3f717', 'addColumn tableName=FED_USER_CONSENT'),
    (39, '3.0.0', 'bburke@redhat.com', 'META-INF/jpa-changelog-3.0.0.xml', 'EXECUTED', '7:13a27db0dae6049541136adad7261d27', 'addColumn tableName=IDENTITY_PROVIDER'),
    (40, '3.2.0-fix', 'keycloak', 'META-INF/jpa-changelog-3.2.0.xml', 'MARK_RAN', '7:550300617e3b59e8af3a6294df8248a3', 'addNotNullConstraint columnName=REALM_ID, tableName=CLIENT_INITIAL_ACCESS'),
    (41, '3.2.0-fix-with-keycloak-5416', 'keycloak', 'META-INF/jpa-changelog-3.2.0.xml', 'MARK_RAN', '7:e3a9482b8931481dc2772a5c07c44f17', 'dropIndex indexName=IDX_CLIENT_INIT_ACC_REALM, tableName=CLIENT_INITIAL_ACCESS; addNotNullConstraint columnName=REALM_ID, tableName=CLIENT_INITIAL_ACCESS; createIndex indexName=IDX_CLIENT_INIT_ACC_REALM, tableName=CLIENT_INITIAL_ACCESS'),
    (42, '3.2.0-fix-offline-sessions', 'hmlnarik', 'META-INF/jpa-changelog-3.2.0.xml', 'EXECUTED', '7:72b07d85a2677cb257edb02b408f332d', 'customChange'),
    (43, '3.2.0-fixed', 'keycloak', 'META-INF/jpa-changelog-3.2.0.xml', 'EXECUTED', '7:a72a7858967bd414835d19e04d880312', 'addColumn tableName=REALM; dropPrimaryKey constraintName=CONSTRAINT_OFFL_CL_SES_PK2, tableName=OFFLINE_CLIENT_SESSION; dropColumn columnName=CLIENT_SESSION_ID, tableName=OFFLINE_CLIENT_SESSION; addPrimaryKey constraintName=CONSTRAINT_OFFL_CL_SES_P...'),
    (44, '3.3.0', 'keycloak', 'META-INF/jpa-changelog-3.3.0.xml', 'EXECUTED', '7:94edff7cf9ce179e7e85f0cd78a3cf2c', 'addColumn tableName=USER_ENTITY'),
    (45, 'authz-3.4.0.CR1-resource-server-pk-change-part1', 'glavoie@gmail.com', 'META-INF/jpa-changelog-authz-3.4.0.CR1.xml', 'EXECUTED', '7:6a48ce645a3525488a90fbf76adf3bb3', 'addColumn tableName=RESOURCE_SERVER_POLICY; addColumn tableName=RESOURCE_SERVER_RESOURCE; addColumn tableName=RESOURCE_SERVER_SCOPE'),
    (46, 'authz-3.4.0.CR1-resource-server-pk-change-part2-KEYCLOAK-6095', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-authz-3.4.0.CR1.xml', 'EXECUTED', '7:e64b5dcea7db06077c6e57d3b9e5ca14', 'customChange'),
    (47, 'authz-3.4.0.CR1-resource-server-pk-change-part3-fixed', 'glavoie@gmail.com', 'META-INF/jpa-changelog-authz-3.4.0.CR1.xml', 'MARK_RAN', '7:fd8cf02498f8b1e72496a20afc75178c', 'dropIndex indexName=IDX_RES_SERV_POL_RES_SERV, tableName=RESOURCE_SERVER_POLICY; dropIndex indexName=IDX_RES_SRV_RES_RES_SRV, tableName=RESOURCE_SERVER_RESOURCE; dropIndex indexName=IDX_RES_SRV_SCOPE_RES_SRV, tableName=RESOURCE_SERVER_SCOPE'),
    (48, 'authz-3.4.0.CR1-resource-server-pk-change-part3-fixed-nodropindex', 'glavoie@gmail.com', 'META-INF/jpa-changelog-authz-3.4.0.CR1.xml', 'EXECUTED', '7:542794f25aa2b1fbabb7e577d6646319', 'addNotNullConstraint columnName=RESOURCE_SERVER_CLIENT_ID, tableName=RESOURCE_SERVER_POLICY; addNotNullConstraint columnName=RESOURCE_SERVER_CLIENT_ID, tableName=RESOURCE_SERVER_RESOURCE; addNotNullConstraint columnName=RESOURCE_SERVER_CLIENT_ID, ...'),
    (49, 'authn-3.4.0.CR1-refresh-token-max-reuse', 'glavoie@gmail.com', 'META-INF/jpa-changelog-authz-3.4.0.CR1.xml', 'EXECUTED', '7:edad604c882df12f74941dac3cc6d650', 'addColumn tableName=REALM'),
    (50, '3.4.0', 'keycloak', 'META-INF/jpa-changelog-3.4.0.xml', 'EXECUTED', '7:0f88b78b7b46480eb92690cbf5e44900', 'addPrimaryKey constraintName=CONSTRAINT_REALM_DEFAULT_ROLES, tableName=REALM_DEFAULT_ROLES; addPrimaryKey constraintName=CONSTRAINT_COMPOSITE_ROLE, tableName=COMPOSITE_ROLE; addPrimaryKey constraintName=CONSTR_REALM_DEFAULT_GROUPS, tableName=REALM...'),
    (51, '3.4.0-KEYCLOAK-5230', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-3.4.0.xml', 'EXECUTED', '7:d560e43982611d936457c327f872dd59', 'createIndex indexName=IDX_FU_ATTRIBUTE, tableName=FED_USER_ATTRIBUTE; createIndex indexName=IDX_FU_CONSENT, tableName=FED_USER_CONSENT; createIndex indexName=IDX_FU_CONSENT_RU, tableName=FED_USER_CONSENT; createIndex indexName=IDX_FU_CREDENTIAL, t...'),
    (52, '3.4.1', 'psilva@redhat.com', 'META-INF/jpa-changelog-3.4.1.xml', 'EXECUTED', '7:c155566c42b4d14ef07059ec3b3bbd8e', 'modifyDataType columnName=VALUE, tableName=CLIENT_ATTRIBUTES'),
    (53, '3.4.2', 'keycloak', 'META-INF/jpa-changelog-3.4.2.xml', 'EXECUTED', '7:b40376581f12d70f3c89ba8ddf5b7dea', 'update tableName=REALM'),
    (54, '3.4.2-KEYCLOAK-5172', 'mkanis@redhat.com', 'META-INF/jpa-changelog-3.4.2.xml', 'EXECUTED', '7:a1132cc395f7b95b3646146c2e38f168', 'update tableName=CLIENT'),
    (55, '4.0.0-KEYCLOAK-6335', 'bburke@redhat.com', 'META-INF/jpa-changelog-4.0.0.xml', 'EXECUTED', '7:d8dc5d89c789105cfa7ca0e82cba60af', 'createTable tableName=CLIENT_AUTH_FLOW_BINDINGS; addPrimaryKey constraintName=C_CLI_FLOW_BIND, tableName=CLIENT_AUTH_FLOW_BINDINGS'),
    (56, '4.0.0-CLEANUP-UNUSED-TABLE', 'bburke@redhat.com', 'META-INF/jpa-changelog-4.0.0.xml', 'EXECUTED', '7:7822e0165097182e8f653c35517656a3', 'dropTable tableName=CLIENT_IDENTITY_PROV_MAPPING'),
    (57, '4.0.0-KEYCLOAK-6228', 'bburke@redhat.com', 'META-INF/jpa-changelog-4.0.0.xml', 'EXECUTED', '7:c6538c29b9c9a08f9e9ea2de5c2b6375', 'dropUniqueConstraint constraintName=UK_JKUWUVD56ONTGSUHOGM8UEWRT, tableName=USER_CONSENT; dropNotNullConstraint columnName=CLIENT_ID, tableName=USER_CONSENT; addColumn tableName=USER_CONSENT; addUniqueConstraint constraintName=UK_JKUWUVD56ONTGSUHO...'),
    (58, '4.0.0-KEYCLOAK-5579-fixed', 'mposolda@redhat.com', 'META-INF/jpa-changelog-4.0.0.xml', 'EXECUTED', '7:6d4893e36de22369cf73bcb051ded875', 'dropForeignKeyConstraint baseTableName=CLIENT_TEMPLATE_ATTRIBUTES, constraintName=FK_CL_TEMPL_ATTR_TEMPL; renameTable newTableName=CLIENT_SCOPE_ATTRIBUTES, oldTableName=CLIENT_TEMPLATE_ATTRIBUTES; renameColumn newColumnName=SCOPE_ID, oldColumnName...'),
    (59, 'authz-4.0.0.CR1', 'psilva@redhat.com', 'META-INF/jpa-changelog-authz-4.0.0.CR1.xml', 'EXECUTED', '7:57960fc0b0f0dd0563ea6f8b2e4a1707', 'createTable tableName=RESOURCE_SERVER_PERM_TICKET; addPrimaryKey constraintName=CONSTRAINT_FAPMT, tableName=RESOURCE_SERVER_PERM_TICKET; addForeignKeyConstraint baseTableName=RESOURCE_SERVER_PERM_TICKET, constraintName=FK_FRSRHO213XCX4WNKOG82SSPMT...'),
    (60, 'authz-4.0.0.Beta3', 'psilva@redhat.com', 'META-INF/jpa-changelog-authz-4.0.0.Beta3.xml', 'EXECUTED', '7:2b4b8bff39944c7097977cc18dbceb3b', 'addColumn tableName=RESOURCE_SERVER_POLICY; addColumn tableName=RESOURCE_SERVER_PERM_TICKET; addForeignKeyConstraint baseTableName=RESOURCE_SERVER_PERM_TICKET, constraintName=FK_FRSRPO2128CX4WNKOG82SSRFY, referencedTableName=RESOURCE_SERVER_POLICY'),
    (61, 'authz-4.2.0.Final', 'mhajas@redhat.com', 'META-INF/jpa-changelog-authz-4.2.0.Final.xml', 'EXECUTED', '7:2aa42a964c59cd5b8ca9822340ba33a8', 'createTable tableName=RESOURCE_URIS; addForeignKeyConstraint baseTableName=RESOURCE_URIS, constraintName=FK_RESOURCE_SERVER_URIS, referencedTableName=RESOURCE_SERVER_RESOURCE; customChange; dropColumn columnName=URI, tableName=RESOURCE_SERVER_RESO...'),
    (62, 'authz-4.2.0.Final-KEYCLOAK-9944', 'hmlnarik@redhat.com', 'META-INF/jpa-changelog-authz-4.2.0.Final.xml', 'EXECUTED', '7:9ac9e58545479929ba23f4a3087a0346', 'addPrimaryKey constraintName=CONSTRAINT_RESOUR_URIS_PK, tableName=RESOURCE_URIS'),
    (63, '4.2.0-KEYCLOAK-6313', 'wadahiro@gmail.com', 'META-INF/jpa-changelog-4.2.0.xml', 'EXECUTED', '7:14d407c35bc4fe1976867756bcea0c36', 'addColumn tableName=REQUIRED_ACTION_PROVIDER'),
    (64, '4.3.0-KEYCLOAK-7984', 'wadahiro@gmail.com', 'META-INF/jpa-changelog-4.3.0.xml', 'EXECUTED', '7:241a8030c748c8548e346adee548fa93', 'update tableName=REQUIRED_ACTION_PROVIDER'),
    (65, '4.6.0-KEYCLOAK-7950', 'psilva@redhat.com', 'META-INF/jpa-changelog-4.6.0.xml', 'EXECUTED', '7:7d3182f65a34fcc61e8d23def037dc3f', 'update tableName=RESOURCE_SERVER_RESOURCE'),
    (66, '4.6.0-KEYCLOAK-8377', 'keycloak', 'META-INF/jpa-changelog-4.6.0.xml', 'EXECUTED', '7:b30039e00a0b9715d430d1b0636728fa', 'createTable tableName=ROLE_ATTRIBUTE; addPrimaryKey constraintName=CONSTRAINT_ROLE_ATTRIBUTE_PK, tableName=ROLE_ATTRIBUTE; addForeignKeyConstraint baseTableName=ROLE_ATTRIBUTE, constraintName=FK_ROLE_ATTRIBUTE_ID, referencedTableName=KEYCLOAK_ROLE...'),
    (67, '4.6.0-KEYCLOAK-8555', 'gideonray@gmail.com', 'META-INF/jpa-changelog-4.6.0.xml', 'EXECUTED', '7:3797315ca61d531780f8e6f82f258159', 'createIndex indexName=IDX_COMPONENT_PROVIDER_TYPE, tableName=COMPONENT'),
    (68, '4.7.0-KEYCLOAK-1267', 'sguilhen@redhat.com', 'META-INF/jpa-changelog-4.7.0.xml', 'EXECUTED', '7:c7aa4c8d9573500c2d347c1941ff0301', 'addColumn tableName=REALM'),
    (69, '4.7.0-KEYCLOAK-7275', 'keycloak', 'META-INF/jpa-changelog-4.7.0.xml', 'EXECUTED', '7:b207faee394fc074a442ecd42185a5dd', 'renameColumn newColumnName=CREATED_ON, oldColumnName=LAST_SESSION_REFRESH, tableName=OFFLINE_USER_SESSION; addNotNullConstraint columnName=CREATED_ON, tableName=OFFLINE_USER_SESSION; addColumn tableName=OFFLINE_USER_SESSION; customChange; createIn...'),
    (70, '4.8.0-KEYCLOAK-8835', 'sguilhen@redhat.com', 'META-INF/jpa-changelog-4.8.0.xml', 'EXECUTED', '7:ab9a9762faaba4ddfa35514b212c4922', 'addNotNullConstraint columnName=SSO_MAX_LIFESPAN_REMEMBER_ME, tableName=REALM; addNotNullConstraint columnName=SSO_IDLE_TIMEOUT_REMEMBER_ME, tableName=REALM'),
    (71, 'authz-7.0.0-KEYCLOAK-10443', 'psilva@redhat.com', 'META-INF/jpa-changelog-authz-7.0.0.xml', 'EXECUTED', '7:b9710f74515a6ccb51b72dc0d19df8c4', 'addColumn tableName=RESOURCE_SERVER'),
    (72, '8.0.0-adding-credential-columns', 'keycloak', 'META-INF/jpa-changelog-8.0.0.xml', 'EXECUTED', '7:ec9707ae4d4f0b7452fee20128083879', 'addColumn tableName=CREDENTIAL; addColumn tableName=FED_USER_CREDENTIAL'),
    (73, '8.0.0-updating-credential-data-not-oracle', 'keycloak', 'META-INF/jpa-changelog-8.0.0.xml', 'EXECUTED', '7:03b3f4b264c3c68ba082250a80b74216', 'update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=FED_USER_CREDENTIAL; update tableName=FED_USER_CREDENTIAL; update tableName=FED_USER_CREDENTIAL'),
    (74, '8.0.0-updating-credential-data-oracle', 'keycloak', 'META-INF/jpa-changelog-8.0.0.xml', 'MARK_RAN', '7:64c5728f5ca1f5aa4392217701c4fe23', 'update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=CREDENTIAL; update tableName=FED_USER_CREDENTIAL; update tableName=FED_USER_CREDENTIAL; update tableName=FED_USER_CREDENTIAL'),
    (75, '8.0.0-credential-cleanup-fixed', 'keycloak', 'META-INF/jpa-changelog-8.0.0.xml', 'EXECUTED', '7:b48da8c11a3d83ddd6b7d0c8c2219345', 'dropDefaultValue columnName=COUNTER, tableName=CREDENTIAL; dropDefaultValue columnName=DIGITS, tableName=CREDENTIAL; dropDefaultValue columnName=PERIOD, tableName=CREDENTIAL; dropDefaultValue columnName=ALGORITHM, tableName=CREDENTIAL; dropColumn ...'),
    (76, '8.0.0-resource-tag-support', 'keycloak', 'META-INF/jpa-changelog-8.0.0.xml', 'EXECUTED', '7:a73379915c23bfad3e8f5c6d5c0aa4bd', 'addColumn tableName=MIGRATION_MODEL; createIndex indexName=IDX_UPDATE_TIME, tableName=MIGRATION_MODEL'),
    (77, '9.0.0-always-display-client', 'keycloak', 'META-INF/jpa-changelog-9.0.0.xml', 'EXECUTED', '7:39e0073779aba192646291aa2332493d', 'addColumn tableName=CLIENT'),
    (78, '9.0.0-drop-constraints-for-column-increase', 'keycloak', 'META-INF/jpa-changelog-9.0.0.xml', 'MARK_RAN', '7:81f87368f00450799b4bf42ea0b3ec34', 'dropUniqueConstraint constraintName=UK_FRSR6T700S9V50BU18WS5PMT, tableName=RESOURCE_SERVER_PERM_TICKET; dropUniqueConstraint constraintName=UK_FRSR6T700S9V50BU18WS5HA6, tableName=RESOURCE_SERVER_RESOURCE; dropPrimaryKey constraintName=CONSTRAINT_O...'),
    (79, '9.0.0-increase-column-size-federated-fk', 'keycloak', 'META-INF/jpa-changelog-9.0.0.xml', 'EXECUTED', '7:20b37422abb9fb6571c618148f013a15', 'modifyDataType columnName=CLIENT_ID, tableName=FED_USER_CONSENT; modifyDataType columnName=CLIENT_REALM_CONSTRAINT, tableName=KEYCLOAK_ROLE; modifyDataType columnName=OWNER, tableName=RESOURCE_SERVER_POLICY; modifyDataType columnName=CLIENT_ID, ta...'),
    (80, '9.0.0-recreate-constraints-after-column-increase', 'keycloak', 'META-INF/jpa-changelog-9.0.0.xml', 'MARK_RAN', '7:1970bb6cfb5ee800736b95ad3fb3c78a', 'addNotNullConstraint columnName=CLIENT_ID, tableName=OFFLINE_CLIENT_SESSION; addNotNullConstraint columnName=OWNER, tableName=RESOURCE_SERVER_PERM_TICKET; addNotNullConstraint columnName=REQUESTER, tableName=RESOURCE_SERVER_PERM_TICKET; addNotNull...'),
    (81, '9.0.1-add-index-to-client.client_id', 'keycloak', 'META-INF/jpa-changelog-9.0.1.xml', 'EXECUTED', '7:45d9b25fc3b455d522d8dcc10a0f4c80', 'createIndex indexName=IDX_CLIENT_ID, tableName=CLIENT'),
    (82, '9.0.1-KEYCLOAK-12579-drop-constraints', 'keycloak', 'META-INF/jpa-changelog-9.0.1.xml', 'MARK_RAN', '7:890ae73712bc187a66c2813a724d037f', 'dropUniqueConstraint constraintName=SIBLING_NAMES, tableName=KEYCLOAK_GROUP'),
    (83, '9.0.1-KEYCLOAK-12579-add-not-null-constraint', 'keycloak', 'META-INF/jpa-changelog-9.0.1.xml', 'EXECUTED', '7:0a211980d27fafe3ff50d19a3a29b538', 'addNotNullConstraint columnName=PARENT_GROUP, tableName=KEYCLOAK_GROUP'),
    (84, '9.0.1-KEYCLOAK-12579-recreate-constraints', 'keycloak', 'META-INF/jpa-changelog-9.0.1.xml', 'MARK_RAN', '7:a161e2ae671a9020fff61e996a207377', 'addUniqueConstraint constraintName=SIBLING_NAMES, tableName=KEYCLOAK_GROUP'),
    (85, '9.0.1-add-index-to-events', 'keycloak', 'META-INF/jpa-changelog-9.0.1.xml', 'EXECUTED', '7:01c49302201bdf815b0a18d1f98a55dc', 'createIndex indexName=IDX_EVENT_TIME, tableName=EVENT_ENTITY'),
    (86, 'map-remove-ri', 'keycloak', 'META-INF/jpa-changelog-11.0.0.xml', 'EXECUTED', '7:3dace6b144c11f53f1ad2c0361279b86', 'dropForeignKeyConstraint baseTableName=REALM, constraintName=FK_TRAF444KK6QRKMS7N56AIWQ5Y; dropForeignKeyConstraint baseTableName=KEYCLOAK_ROLE, constraintName=FK_KJHO5LE2C0RAL09FL8CM9WFW9')
) AS v (n, id, author, filename, exectype, md5sum, description)
ORDER BY v.n;

-- Liquibase's lock (id 1) and Keycloak's own lock namespaces (1000, 1001), all released.
INSERT INTO databasechangeloglock (id, locked, lockgranted, lockedby) VALUES
    (1, false, NULL, NULL),
    (1000, false, NULL, NULL),
    (1001, false, NULL, NULL);

-- Keycloak writes one row per stored version; update_time is in epoch seconds. The newest is
-- found by update_time, not by comparing version strings ('10.0.2' < '11.0.3' < '9…').
INSERT INTO migration_model (id, version, update_time) VALUES
    ('b1s7q', '10.0.2', 1593677735),
    ('9xq2m', '11.0.3', 1612879433);

-- ---------------------------------------------------------------------------------------
-- Data: realms, clients, roles
-- ---------------------------------------------------------------------------------------

INSERT INTO realm (id, access_code_lifespan, user_action_lifespan, access_token_lifespan,
    account_theme, admin_theme, email_theme, enabled, events_enabled, events_expiration,
    login_theme, name, not_before, password_policy, registration_allowed, remember_me,
    reset_password_allowed, social, ssl_required, sso_idle_timeout, sso_max_lifespan,
    update_profile_on_soc_login, verify_email, master_admin_client, login_lifespan,
    internationalization_enabled, default_locale, reg_email_as_username, admin_events_enabled,
    admin_events_details_enabled, edit_username_allowed, otp_policy_counter, otp_policy_window,
    otp_policy_period, otp_policy_digits, otp_policy_alg, otp_policy_type, browser_flow,
    registration_flow, direct_grant_flow, reset_credentials_flow, client_auth_flow,
    offline_session_idle_timeout, revoke_refresh_token, access_token_life_implicit,
    login_with_email_allowed, duplicate_emails_allowed, docker_auth_flow, refresh_token_max_reuse,
    allow_user_managed_access, sso_max_lifespan_remember_me, sso_idle_timeout_remember_me)
SELECT r.id, 60, 300, r.token_lifespan,
    NULL, NULL, NULL, true, r.events, r.events_expiration,
    r.login_theme, r.id, 0, r.password_policy, false, r.id <> 'master',
    r.id <> 'master', false, 'external', 1800, 36000,
    false, r.id = 'partners', pg_temp.fx_id('client:master:' || r.id || '-realm'), 1800,
    r.id <> 'master', CASE WHEN r.id = 'master' THEN NULL ELSE 'en' END, r.id = 'partners', r.id <> 'master',
    r.id <> 'master', false, 0, 1,
    30, 6, 'HmacSHA1', 'totp', pg_temp.fx_id('flow:' || r.id || ':browser'),
    pg_temp.fx_id('flow:' || r.id || ':registration'), pg_temp.fx_id('flow:' || r.id || ':direct grant'),
    pg_temp.fx_id('flow:' || r.id || ':reset credentials'), pg_temp.fx_id('flow:' || r.id || ':clients'),
    2592000, false, 900,
    true, false, pg_temp.fx_id('flow:' || r.id || ':docker auth'), 0,
    false, 0, 0
FROM (VALUES
    ('master', 60, false, NULL::bigint, NULL, NULL),
    ('alfresco', 300, true, 2592000::bigint, 'alfresco', 'length(8) and notUsername(undefined)'),
    ('partners', 300, true, 604800::bigint, 'keycloak', 'length(12) and digits(1) and passwordHistory(3)')
) AS r (id, token_lifespan, events, events_expiration, login_theme, password_policy);

INSERT INTO realm_attribute (name, realm_id, value) VALUES
    ('displayName', 'master', 'Keycloak'),
    ('displayNameHtml', 'master', '<div class="kc-logo-text"><span>Keycloak</span></div>'),
    ('displayName', 'alfresco', 'Alfresco'),
    ('displayNameHtml', 'alfresco', '<div class="kc-logo-text"><span>Alfresco Identity Service</span></div>'),
    ('frontendUrl', 'alfresco', 'https://alfresco.example.com/auth'),
    ('displayName', 'partners', 'Partner-Portal · パートナー 🤝'),
    ('displayNameHtml', 'partners', '<b>Partner-Portal</b> · <i>Portail partenaires</i> · パートナー 🤝'),
    ('frontendUrl', 'partners', NULL);

INSERT INTO realm_attribute (name, realm_id, value)
SELECT a.name, r.id, a.value
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (id)
CROSS JOIN (VALUES
    ('bruteForceProtected', 'true'),
    ('failureFactor', '30'),
    ('offlineSessionMaxLifespanEnabled', 'false'),
    ('actionTokenGeneratedByAdminLifespan', '43200'),
    ('_browser_header.xFrameOptions', 'SAMEORIGIN'),
    ('_browser_header.contentSecurityPolicy', 'frame-src ''self''; frame-ancestors ''self''; object-src ''none'';')
) AS a (name, value);

INSERT INTO realm_events_listeners (realm_id, value) VALUES
    ('master', 'jboss-logging'), ('alfresco', 'jboss-logging'), ('partners', 'jboss-logging');

-- Clients: Keycloak's built-in ones per realm, the master realm's admin clients for the other
-- realms, and the site's own.
INSERT INTO client (id, enabled, full_scope_allowed, client_id, not_before, public_client, secret,
    base_url, bearer_only, management_url, surrogate_auth_required, realm_id, protocol,
    node_rereg_timeout, frontchannel_logout, consent_required, name, service_accounts_enabled,
    client_authenticator_type, root_url, description, registration_token, standard_flow_enabled,
    implicit_flow_enabled, direct_access_grants_enabled, always_display_in_console)
SELECT pg_temp.fx_id('client:' || c.realm || ':' || c.client_id), true, c.full_scope, c.client_id, 0,
    c.public, c.secret, c.base_url, c.bearer, NULL, false, c.realm,
    CASE WHEN c.bearer THEN NULL ELSE 'openid-connect' END,
    0, false, c.client_id = 'partner-portal', c.name, c.service_accounts,
    'client-secret', c.root_url, c.description, NULL, NOT c.bearer AND NOT c.service_accounts,
    false, c.direct, false
FROM (VALUES
    -- realm, client_id, name, public, bearer, full scope, base url, root url, direct grants, service accounts, secret, description
    ('master', 'account', '${client_account}', false, false, false, '/realms/master/account/', '${authBaseUrl}', false, false, '**********', NULL),
    ('master', 'account-console', '${client_account-console}', true, false, false, '/realms/master/account/', '${authBaseUrl}', false, false, NULL, NULL),
    ('master', 'admin-cli', '${client_admin-cli}', true, false, false, NULL, NULL, true, false, NULL, NULL),
    ('master', 'broker', '${client_broker}', false, true, false, NULL, NULL, false, false, '**********', NULL),
    ('master', 'master-realm', 'master Realm', false, true, true, NULL, NULL, false, false, NULL, NULL),
    ('master', 'security-admin-console', '${client_security-admin-console}', true, false, false, '/admin/master/console/', '${authAdminUrl}', false, false, NULL, NULL),
    ('master', 'alfresco-realm', 'alfresco Realm', false, true, true, NULL, NULL, false, false, NULL, NULL),
    ('master', 'partners-realm', 'partners Realm', false, true, true, NULL, NULL, false, false, NULL, NULL),
    ('alfresco', 'account', '${client_account}', false, false, false, '/realms/alfresco/account/', '${authBaseUrl}', false, false, '**********', NULL),
    ('alfresco', 'account-console', '${client_account-console}', true, false, false, '/realms/alfresco/account/', '${authBaseUrl}', false, false, NULL, NULL),
    ('alfresco', 'admin-cli', '${client_admin-cli}', true, false, false, NULL, NULL, true, false, NULL, NULL),
    ('alfresco', 'broker', '${client_broker}', false, true, false, NULL, NULL, false, false, '**********', NULL),
    ('alfresco', 'realm-management', '${client_realm-management}', false, true, false, NULL, NULL, false, false, NULL, NULL),
    ('alfresco', 'security-admin-console', '${client_security-admin-console}', true, false, false, '/admin/alfresco/console/', '${authAdminUrl}', false, false, NULL, NULL),
    ('alfresco', 'alfresco', 'Alfresco', true, false, true, NULL, NULL, true, false, NULL, 'Alfresco Digital Workspace · Share · ADF apps'),
    ('alfresco', 'alfresco-sync', 'Alfresco Sync Service', false, false, true, NULL, NULL, false, true, '6f1c3bb0-4b1e-4b3f-9a57-0c8f6a2f9d41', NULL),
    ('partners', 'account', '${client_account}', false, false, false, '/realms/partners/account/', '${authBaseUrl}', false, false, '**********', NULL),
    ('partners', 'account-console', '${client_account-console}', true, false, false, '/realms/partners/account/', '${authBaseUrl}', false, false, NULL, NULL),
    ('partners', 'admin-cli', '${client_admin-cli}', true, false, false, NULL, NULL, true, false, NULL, NULL),
    ('partners', 'broker', '${client_broker}', false, true, false, NULL, NULL, false, false, '**********', NULL),
    ('partners', 'realm-management', '${client_realm-management}', false, true, false, NULL, NULL, false, false, NULL, NULL),
    ('partners', 'security-admin-console', '${client_security-admin-console}', true, false, false, '/admin/partners/console/', '${authAdminUrl}', false, false, NULL, NULL),
    ('partners', 'partner-portal', 'Portail partenaires — パートナー', false, false, true, 'https://partners.example.com/', NULL, false, false, 'c0ffee00-dead-4bee-8f00-5eed5eed5eed', 'Ünïcödé client ✓')
) AS c (realm, client_id, name, public, bearer, full_scope, base_url, root_url, direct, service_accounts, secret, description);

INSERT INTO client_attributes (client_id, value, name)
SELECT pg_temp.fx_id('client:' || a.realm || ':' || a.client_id), a.value, a.name
FROM (VALUES
    ('master', 'account-console', 'pkce.code.challenge.method', 'S256'),
    ('master', 'security-admin-console', 'pkce.code.challenge.method', 'S256'),
    ('alfresco', 'account-console', 'pkce.code.challenge.method', 'S256'),
    ('alfresco', 'security-admin-console', 'pkce.code.challenge.method', 'S256'),
    ('partners', 'account-console', 'pkce.code.challenge.method', 'S256'),
    ('partners', 'security-admin-console', 'pkce.code.challenge.method', 'S256'),
    ('alfresco', 'alfresco', 'access.token.lifespan', '3600'),
    ('alfresco', 'alfresco', 'display.on.consent.screen', 'false'),
    ('alfresco', 'alfresco', 'exclude.session.state.from.auth.response', 'false'),
    ('alfresco', 'alfresco', 'saml_force_name_id_format', 'false'),
    ('alfresco', 'alfresco-sync', 'use.refresh.tokens', 'true'),
    ('alfresco', 'alfresco-sync', 'client_credentials.use_refresh_token', 'false'),
    ('partners', 'partner-portal', 'login_theme', 'partners'),
    ('partners', 'partner-portal', 'consent.screen.text', 'Veuillez accepter — 同意してください 🙏')
) AS a (realm, client_id, name, value);

INSERT INTO redirect_uris (client_id, value)
SELECT pg_temp.fx_id('client:' || u.realm || ':' || u.client_id), u.value
FROM (VALUES
    ('master', 'account', '/realms/master/account/*'),
    ('master', 'account-console', '/realms/master/account/*'),
    ('master', 'security-admin-console', '/admin/master/console/*'),
    ('alfresco', 'account', '/realms/alfresco/account/*'),
    ('alfresco', 'account-console', '/realms/alfresco/account/*'),
    ('alfresco', 'security-admin-console', '/admin/alfresco/console/*'),
    ('alfresco', 'alfresco', 'http://localhost*'),
    ('alfresco', 'alfresco', 'https://alfresco.example.com/*'),
    ('alfresco', 'alfresco', 'https://alfresco.example.com/workspace/*'),
    ('partners', 'account', '/realms/partners/account/*'),
    ('partners', 'account-console', '/realms/partners/account/*'),
    ('partners', 'security-admin-console', '/admin/partners/console/*'),
    ('partners', 'partner-portal', 'https://partners.example.com/*')
) AS u (realm, client_id, value);

-- Realm roles.
INSERT INTO keycloak_role (id, client_realm_constraint, client_role, description, name, realm_id, client, realm)
SELECT pg_temp.fx_id('role:' || r.realm || ':' || r.name), r.realm, false, r.description, r.name, r.realm, NULL, r.realm
FROM (VALUES
    ('master', 'admin', '${role_admin}'),
    ('master', 'create-realm', '${role_create-realm}'),
    ('master', 'offline_access', '${role_offline-access}'),
    ('master', 'uma_authorization', '${role_uma_authorization}'),
    ('alfresco', 'offline_access', '${role_offline-access}'),
    ('alfresco', 'uma_authorization', '${role_uma_authorization}'),
    ('alfresco', 'admin', 'Alfresco administrators'),
    ('alfresco', 'user', 'Utilisateurs · ユーザー · Пользователи'),
    ('partners', 'offline_access', '${role_offline-access}'),
    ('partners', 'uma_authorization', '${role_uma_authorization}')
) AS r (realm, name, description);

-- Client roles: account and broker in every realm; the realm-management roles on each realm's
-- realm-management client and on the master realm's <realm>-realm clients.
CREATE TEMPORARY TABLE fx_client_role (realm text, client_id text, name text) ON COMMIT DROP;
INSERT INTO fx_client_role
SELECT r.realm, c.client_id, c.name
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES
    ('account', 'view-profile'), ('account', 'manage-account'), ('account', 'manage-account-links'),
    ('account', 'view-applications'), ('account', 'view-consent'), ('account', 'manage-consent'),
    ('broker', 'read-token')
) AS c (client_id, name);
INSERT INTO fx_client_role
SELECT m.realm, m.client_id, n.name
FROM (VALUES ('alfresco', 'realm-management'), ('partners', 'realm-management'),
             ('master', 'master-realm'), ('master', 'alfresco-realm'), ('master', 'partners-realm')) AS m (realm, client_id)
CROSS JOIN (VALUES ('create-client'), ('impersonation'), ('manage-authorization'), ('manage-clients'),
    ('manage-events'), ('manage-identity-providers'), ('manage-realm'), ('manage-users'), ('query-clients'),
    ('query-groups'), ('query-realms'), ('query-users'), ('view-authorization'), ('view-clients'),
    ('view-events'), ('view-identity-providers'), ('view-realm'), ('view-users')) AS n (name);
INSERT INTO fx_client_role VALUES ('alfresco', 'realm-management', 'realm-admin'), ('partners', 'realm-management', 'realm-admin');

INSERT INTO keycloak_role (id, client_realm_constraint, client_role, description, name, realm_id, client, realm)
SELECT pg_temp.fx_id('role:' || r.realm || ':' || r.client_id || ':' || r.name),
    pg_temp.fx_id('client:' || r.realm || ':' || r.client_id), true, '${role_' || r.name || '}', r.name,
    r.realm, pg_temp.fx_id('client:' || r.realm || ':' || r.client_id), NULL
FROM fx_client_role AS r
ORDER BY r.realm, r.client_id, r.name;

INSERT INTO composite_role (composite, child_role)
SELECT pg_temp.fx_id('role:master:admin'), pg_temp.fx_id('role:master:create-realm')
UNION ALL
SELECT pg_temp.fx_id('role:master:admin'), pg_temp.fx_id('role:master:' || r.client_id || ':' || r.name)
FROM fx_client_role AS r
WHERE r.realm = 'master' AND r.client_id LIKE '%-realm'
UNION ALL
SELECT pg_temp.fx_id('role:' || r.realm || ':realm-management:realm-admin'),
    pg_temp.fx_id('role:' || r.realm || ':realm-management:' || r.name)
FROM fx_client_role AS r
WHERE r.client_id = 'realm-management' AND r.name <> 'realm-admin'
UNION ALL
SELECT pg_temp.fx_id('role:' || r.realm || ':account:' || c.parent), pg_temp.fx_id('role:' || r.realm || ':account:' || c.child)
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES ('manage-account', 'manage-account-links'), ('manage-consent', 'view-consent')) AS c (parent, child)
UNION ALL
SELECT pg_temp.fx_id('role:' || m.realm || ':' || m.client_id || ':' || c.parent),
    pg_temp.fx_id('role:' || m.realm || ':' || m.client_id || ':' || c.child)
FROM (SELECT DISTINCT realm, client_id FROM fx_client_role WHERE name = 'view-users') AS m
CROSS JOIN (VALUES ('view-users', 'query-users'), ('view-users', 'query-groups'), ('view-clients', 'query-clients')) AS c (parent, child);

-- Keycloak 11 still has realm and client default roles (Keycloak 13 replaced them).
INSERT INTO realm_default_roles (realm_id, role_id)
SELECT r.realm, pg_temp.fx_id('role:' || r.realm || ':' || d.name)
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES ('offline_access'), ('uma_authorization')) AS d (name);

INSERT INTO client_default_roles (client_id, role_id)
SELECT pg_temp.fx_id('client:' || r.realm || ':account'), pg_temp.fx_id('role:' || r.realm || ':account:' || d.name)
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES ('view-profile'), ('manage-account')) AS d (name);

INSERT INTO scope_mapping (client_id, role_id)
SELECT pg_temp.fx_id('client:' || r.realm || ':account-console'), pg_temp.fx_id('role:' || r.realm || ':account:manage-account')
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm);

-- Groups. Top-level groups have parent_group ' ' (a single space) since 9.0.1.
INSERT INTO keycloak_group (id, name, parent_group, realm_id)
SELECT pg_temp.fx_id('group:' || g.realm || ':' || g.path), g.name,
    CASE WHEN g.parent IS NULL THEN ' ' ELSE pg_temp.fx_id('group:' || g.realm || ':' || g.parent) END, g.realm
FROM (VALUES
    ('alfresco', '/engineering', 'engineering', NULL),
    ('alfresco', '/engineering/backend', 'backend', '/engineering'),
    ('alfresco', '/engineering/frontend', 'frontend', '/engineering'),
    ('alfresco', '/sales-販売', 'sales-販売', NULL),
    ('alfresco', '/ALFRESCO_ADMINISTRATORS', 'ALFRESCO_ADMINISTRATORS', NULL),
    ('alfresco', '/Équipe produit 🚀', 'Équipe produit 🚀', NULL),
    ('partners', '/partners-all', 'partners-all', NULL)
) AS g (realm, path, name, parent);

INSERT INTO group_role_mapping (role_id, group_id) VALUES
    (pg_temp.fx_id('role:alfresco:admin'), pg_temp.fx_id('group:alfresco:/ALFRESCO_ADMINISTRATORS')),
    (pg_temp.fx_id('role:alfresco:realm-management:realm-admin'), pg_temp.fx_id('group:alfresco:/ALFRESCO_ADMINISTRATORS')),
    (pg_temp.fx_id('role:alfresco:user'), pg_temp.fx_id('group:alfresco:/engineering'));

INSERT INTO realm_default_groups (realm_id, group_id) VALUES
    ('partners', pg_temp.fx_id('group:partners:/partners-all'));

INSERT INTO required_action_provider (id, alias, name, realm_id, enabled, default_action, provider_id, priority)
SELECT pg_temp.fx_id('required-action:' || r.realm || ':' || a.alias), a.alias, a.name, r.realm, a.enabled, false, a.alias, a.priority
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES
    ('VERIFY_EMAIL', 'Verify Email', true, 50),
    ('UPDATE_PROFILE', 'Update Profile', true, 40),
    ('CONFIGURE_TOTP', 'Configure OTP', true, 10),
    ('UPDATE_PASSWORD', 'Update Password', true, 30),
    ('terms_and_conditions', 'Terms and Conditions', false, 20),
    ('update_user_locale', 'Update User Locale', true, 1000)
) AS a (alias, name, enabled, priority);

-- Realm keys. The key material is pseudo-random base64 of realistic length, not real keys.
INSERT INTO component (id, name, parent_id, provider_id, provider_type, realm_id, sub_type)
SELECT pg_temp.fx_id('component:' || r.realm || ':' || p.provider), p.provider, r.realm, p.provider,
    'org.keycloak.keys.KeyProvider', r.realm, NULL
FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
CROSS JOIN (VALUES ('rsa-generated'), ('hmac-generated'), ('aes-generated')) AS p (provider);

INSERT INTO component_config (id, component_id, name, value)
SELECT pg_temp.fx_id('component-config:' || c.realm || ':' || c.provider || ':' || c.name),
    pg_temp.fx_id('component:' || c.realm || ':' || c.provider), c.name, c.value
FROM (
    SELECT r.realm, 'rsa-generated' AS provider, v.name, v.value
    FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
    CROSS JOIN LATERAL (VALUES
        ('privateKey', 'MIIEowIBAAKCAQEA' || pg_temp.fx_b64(pg_temp.fx_bytes('rsa-private-key:' || r.realm, 1170))),
        ('certificate', 'MIICnTCCAYUCBgFzDp' || pg_temp.fx_b64(pg_temp.fx_bytes('rsa-certificate:' || r.realm, 651))),
        ('priority', '100')
    ) AS v (name, value)
    UNION ALL
    SELECT r.realm, 'hmac-generated', v.name, v.value
    FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
    CROSS JOIN LATERAL (VALUES
        ('kid', pg_temp.fx_id('kid:hmac:' || r.realm)),
        ('secret', translate(pg_temp.fx_b64(pg_temp.fx_bytes('hmac-secret:' || r.realm, 64)), '+/=', '-_')),
        ('priority', '100'),
        ('algorithm', 'HS256')
    ) AS v (name, value)
    UNION ALL
    SELECT r.realm, 'aes-generated', v.name, v.value
    FROM (VALUES ('master'), ('alfresco'), ('partners')) AS r (realm)
    CROSS JOIN LATERAL (VALUES
        ('kid', pg_temp.fx_id('kid:aes:' || r.realm)),
        ('secret', translate(pg_temp.fx_b64(pg_temp.fx_bytes('aes-secret:' || r.realm, 16)), '+/=', '-_')),
        ('priority', '100')
    ) AS v (name, value)
) AS c;

-- ---------------------------------------------------------------------------------------
-- Data: users
-- ---------------------------------------------------------------------------------------

-- i numbers the generated users of a realm (1..n); the realm admins have i = 0 and the
-- service account i = -1.
CREATE TEMPORARY TABLE fx_user (
    realm text, i integer, id varchar(36), username text, email text, first_name text, last_name text,
    email_verified boolean, enabled boolean, created bigint, not_before integer, sa_link varchar(36)
) ON COMMIT DROP;

INSERT INTO fx_user VALUES
    ('master', 0, pg_temp.fx_id('user:master:admin'), 'admin', NULL, NULL, NULL, false, true, 1593677736512, 0, NULL),
    ('alfresco', 0, pg_temp.fx_id('user:alfresco:admin'), 'admin', 'admin@app.activiti.com', 'Administrator', NULL, true, true, 1593677741873, 0, NULL),
    ('alfresco', -1, pg_temp.fx_id('user:alfresco:service-account-alfresco-sync'), 'service-account-alfresco-sync',
        NULL, NULL, NULL, false, true, 1593677742290, 0, pg_temp.fx_id('client:alfresco:alfresco-sync'));

-- 600 alfresco users: names in several scripts, some unicode usernames and domains, NULLs.
INSERT INTO fx_user
SELECT 'alfresco', i, pg_temp.fx_id('user:alfresco:' || i),
    CASE WHEN i % 50 = 0 THEN n.stems[(i / 50) % 6 + 1] || '.' || i ELSE 'user' || lpad(i::text, 4, '0') END,
    CASE WHEN i % 7 = 0 THEN NULL ELSE 'user' || lpad(i::text, 4, '0') || '@' || n.domains[i % 4 + 1] END,
    CASE WHEN i % 97 = 0 THEN NULL ELSE n.first_names[i % 17 + 1] END,
    CASE WHEN i % 97 = 0 OR i % 89 = 0 THEN NULL ELSE n.last_names[i % 13 + 1] END,
    i % 3 = 0, i % 41 <> 0, 1593678000000 + i * 45000000::bigint,
    CASE WHEN i % 83 = 0 THEN 1612900000 ELSE 0 END, NULL
FROM generate_series(1, 600) AS i,
    (SELECT
        ARRAY['Anna', 'José', 'Zoë', 'Søren', 'Łukasz', 'Đorđe', 'Αλέξανδρος', 'Дмитрий', 'محمد', 'דוד',
              'अर्जुन', '明', 'さくら', '민준', 'Thảo', 'Siobhán', 'Chloé'] AS first_names,
        ARRAY['Smith', 'García', 'Müller', 'Kowalski', 'Παπαδόπουλος', 'Иванова', 'الحسيني', 'כהן',
              'शर्मा', '王', '山田', '김', 'O''Brien'] AS last_names,
        ARRAY['дмитрий', 'さくら', '明', 'søren', 'zoë', 'αλέξανδρος'] AS stems,
        ARRAY['example.com', 'alfresco.example', '例え.テスト', 'bücher.example'] AS domains) AS n;

-- 120 partners users; the partners realm uses the e-mail address as username.
INSERT INTO fx_user
SELECT 'partners', i, pg_temp.fx_id('user:partners:' || i),
    'partner' || lpad(i::text, 3, '0') || '@' || d.domain,
    'partner' || lpad(i::text, 3, '0') || '@' || d.domain,
    n.first_names[(i + 5) % 17 + 1], n.last_names[(i + 3) % 13 + 1],
    true, true, 1600000000000 + i * 3600000::bigint, 0, NULL
FROM generate_series(1, 120) AS i
CROSS JOIN LATERAL (SELECT (ARRAY['acme.example', 'müller-gmbh.example', '株式会社.example'])[i % 3 + 1] AS domain) AS d,
    (SELECT
        ARRAY['Anna', 'José', 'Zoë', 'Søren', 'Łukasz', 'Đorđe', 'Αλέξανδρος', 'Дмитрий', 'محمد', 'דוד',
              'अर्जुन', '明', 'さくら', '민준', 'Thảo', 'Siobhán', 'Chloé'] AS first_names,
        ARRAY['Smith', 'García', 'Müller', 'Kowalski', 'Παπαδόπουλος', 'Иванова', 'الحسيني', 'כהן',
              'शर्मा', '王', '山田', '김', 'O''Brien'] AS last_names) AS n;

-- email_constraint is the e-mail, or a random id when there is none (so the unique
-- constraint allows many users without e-mail).
INSERT INTO user_entity (id, email, email_constraint, email_verified, enabled, federation_link,
    first_name, last_name, realm_id, username, created_timestamp, service_account_client_link, not_before)
SELECT u.id, u.email, coalesce(u.email, pg_temp.fx_id('email-constraint:' || u.id)), u.email_verified, u.enabled, NULL,
    u.first_name, u.last_name, u.realm, u.username, u.created, u.sa_link, u.not_before
FROM fx_user AS u
ORDER BY u.realm, u.i;

INSERT INTO user_attribute (name, value, user_id, id)
SELECT a.name, a.value, a.user_id, pg_temp.fx_id('user-attribute:' || a.user_id || ':' || a.name)
FROM (
    SELECT 'locale' AS name, CASE WHEN u.i % 13 = 0 THEN NULL ELSE (ARRAY['en', 'de', 'fr', 'ja', 'zh-CN'])[u.i % 5 + 1] END AS value,
        u.id AS user_id, u.i
    FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0
    UNION ALL
    SELECT 'department', (ARRAY['Engineering', 'Sales', 'Support', 'Finance', 'Légal', '研究開発', 'Маркетинг'])[u.i % 7 + 1], u.id, u.i
    FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 3 <> 0
    UNION ALL
    SELECT 'nickname', (ARRAY['🦊 Fox', '🚀 Rocket', '👩🏽‍💻 dev', '🇯🇵 東京', '☕ coffee & ✓'])[(u.i / 25) % 5 + 1], u.id, u.i
    FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 25 = 0
    UNION ALL
    SELECT 'organisation', (ARRAY['ACME Corp', 'Müller GmbH', '株式会社テスト', 'Ελληνική Εταιρεία Α.Ε.'])[u.i % 4 + 1], u.id, u.i
    FROM fx_user AS u WHERE u.realm = 'partners'
    UNION ALL
    SELECT 'phone', '+49 30 ' || lpad(((u.i * 7919) % 10000000)::text, 7, '0'), u.id, u.i
    FROM fx_user AS u WHERE u.realm = 'partners' AND u.i % 2 = 0
) AS a
ORDER BY a.user_id, a.name;

-- Passwords in Keycloak 8+ form (hash and salt in secret_data), for everyone but the service
-- account and every tenth alfresco user; OTP for every twentieth alfresco user.
INSERT INTO credential (id, salt, type, user_id, created_date, user_label, secret_data, credential_data, priority)
SELECT pg_temp.fx_id('credential:password:' || u.id),
    CASE WHEN u.realm = 'master' THEN decode('00ff00fe7f800a0d5c27223b00000001', 'hex')
         WHEN u.i % 8 = 1 THEN pg_temp.fx_bytes('salt:' || u.id, 16) END,
    'password', u.id, u.created + 1234, NULL,
    format('{"value":"%s","salt":"%s","additionalParameters":{}}',
        pg_temp.fx_b64(pg_temp.fx_bytes('hash:' || u.id, 64)), pg_temp.fx_b64(pg_temp.fx_bytes('salt:' || u.id, 16))),
    '{"hashIterations":27500,"algorithm":"pbkdf2-sha256","additionalParameters":{}}', 10
FROM fx_user AS u
WHERE u.i >= 0 AND NOT (u.realm = 'alfresco' AND u.i > 0 AND u.i % 10 = 0)
UNION ALL
SELECT pg_temp.fx_id('credential:otp:' || u.id), NULL, 'otp', u.id, u.created + 86400000,
    CASE WHEN u.i % 40 = 1 THEN 'Phone 📱' END,
    format('{"value":"%s"}', upper(substr(translate(pg_temp.fx_b64(pg_temp.fx_bytes('otp:' || u.id, 20)), '+/=', 'XYZ'), 1, 20))),
    '{"subType":"totp","digits":6,"counter":0,"period":30,"algorithm":"HmacSHA1"}', 20
FROM fx_user AS u
WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 20 = 1;

-- Every user has the realm's default roles; the admins have more.
INSERT INTO user_role_mapping (role_id, user_id)
SELECT pg_temp.fx_id('role:' || u.realm || ':' || d.name), u.id
FROM fx_user AS u CROSS JOIN (VALUES ('offline_access'), ('uma_authorization')) AS d (name)
UNION ALL
SELECT pg_temp.fx_id(v.role), pg_temp.fx_id(v.user_seed)
FROM (VALUES
    ('role:master:admin', 'user:master:admin'),
    ('role:alfresco:admin', 'user:alfresco:admin'),
    ('role:alfresco:realm-management:realm-admin', 'user:alfresco:admin')
) AS v (role, user_seed);

INSERT INTO user_group_membership (group_id, user_id)
SELECT pg_temp.fx_id('group:alfresco:' || CASE WHEN u.i % 8 = 0 THEN '/engineering/backend' ELSE '/engineering/frontend' END), u.id
FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 4 = 0
UNION ALL
SELECT pg_temp.fx_id('group:alfresco:/sales-販売'), u.id
FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 9 = 0
UNION ALL
SELECT pg_temp.fx_id('group:alfresco:/ALFRESCO_ADMINISTRATORS'), pg_temp.fx_id('user:alfresco:admin')
UNION ALL
SELECT pg_temp.fx_id('group:partners:/partners-all'), u.id
FROM fx_user AS u WHERE u.realm = 'partners';

INSERT INTO user_required_action (user_id, required_action)
SELECT u.id, 'UPDATE_PASSWORD' FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 17 = 0
UNION ALL
SELECT u.id, 'VERIFY_EMAIL' FROM fx_user AS u WHERE u.realm = 'alfresco' AND u.i > 0 AND u.i % 29 = 0;

-- ---------------------------------------------------------------------------------------
-- Data: events
-- ---------------------------------------------------------------------------------------

-- 2000 login events over September 2021 (event_time in epoch millis).
INSERT INTO event_entity (id, client_id, details_json, error, ip_address, realm_id, session_id, event_time, type, user_id)
SELECT pg_temp.fx_id('event:' || e.g), e.client,
    CASE
        WHEN e.type = 'LOGIN' THEN format(
            '{"auth_method":"openid-connect","auth_type":"code","redirect_uri":"%s","consent":"no_consent_required","code_id":"%s","username":"%s"}',
            e.redirect, pg_temp.fx_id('code:' || e.g), u.username)
        WHEN e.type = 'CODE_TO_TOKEN' THEN format(
            '{"token_id":"%s","grant_type":"authorization_code","refresh_token_type":"Refresh","scope":"openid profile email","refresh_token_id":"%s","code_id":"%s","client_auth_method":"client-secret"}',
            pg_temp.fx_id('token:' || e.g), pg_temp.fx_id('refresh-token:' || e.g), pg_temp.fx_id('code:' || e.g))
        WHEN e.type = 'REFRESH_TOKEN' THEN format(
            '{"token_id":"%s","grant_type":"refresh_token","refresh_token_type":"Refresh","scope":"openid profile email","refresh_token_id":"%s","updated_refresh_token_id":"%s","client_auth_method":"client-secret"}',
            pg_temp.fx_id('token:' || e.g), pg_temp.fx_id('refresh-token:' || (e.g - 1)), pg_temp.fx_id('refresh-token:' || e.g))
        WHEN e.type = 'LOGOUT' THEN format('{"redirect_uri":"%s"}', e.redirect)
        ELSE format('{"auth_method":"openid-connect","auth_type":"code","redirect_uri":"%s","code_id":"%s","username":"%s"}',
            e.redirect, pg_temp.fx_id('code:' || e.g), CASE WHEN e.k = 19 THEN 'unknown-' || e.g ELSE u.username END)
    END,
    CASE e.k WHEN 18 THEN 'invalid_user_credentials' WHEN 19 THEN 'user_not_found' END,
    CASE WHEN e.g % 15 = 0 THEN '2001:db8:4a::' || to_hex(e.g)
         ELSE '10.' || (20 + e.g % 3) || '.' || (e.g * 13) % 256 || '.' || (e.g * 7) % 254 + 1 END,
    e.realm,
    CASE WHEN e.k >= 18 THEN NULL ELSE pg_temp.fx_id('session:' || e.realm || ':' || (e.g / 4)) END,
    1630454400000 + e.g * 1237000::bigint + (e.g * 7919) % 1000,
    e.type,
    CASE WHEN e.k = 19 THEN NULL ELSE u.id END
FROM (
    SELECT g, k, realm,
        CASE WHEN k < 10 THEN 'LOGIN' WHEN k < 14 THEN 'CODE_TO_TOKEN' WHEN k < 17 THEN 'REFRESH_TOKEN'
             WHEN k = 17 THEN 'LOGOUT' ELSE 'LOGIN_ERROR' END AS type,
        client,
        CASE client WHEN 'alfresco' THEN 'https://alfresco.example.com/workspace/'
                    WHEN 'account-console' THEN 'https://alfresco.example.com/auth/realms/alfresco/account/#/'
                    ELSE 'https://partners.example.com/' END AS redirect,
        CASE WHEN realm = 'alfresco' THEN (g * 7919) % 600 + 1 ELSE (g * 31) % 120 + 1 END AS user_i
    FROM generate_series(1, 2000) AS g
    CROSS JOIN LATERAL (SELECT g % 20 AS k, CASE WHEN g % 10 = 0 THEN 'partners' ELSE 'alfresco' END AS realm) AS x
    CROSS JOIN LATERAL (SELECT CASE WHEN x.realm = 'partners' THEN 'partner-portal'
                                    WHEN g % 6 = 0 THEN 'account-console' ELSE 'alfresco' END AS client) AS y
) AS e
JOIN fx_user AS u ON u.realm = e.realm AND u.i = e.user_i
ORDER BY e.g;

-- Admin events, with representations (admin_events_details_enabled). Two of them are long:
-- a realm update of ~15 KB and a client update of ~6 KB.
INSERT INTO admin_event_entity (id, admin_event_time, realm_id, operation_type, auth_realm_id, auth_client_id,
    auth_user_id, ip_address, resource_path, representation, error, resource_type)
SELECT pg_temp.fx_id('admin-event:' || a.g), 1625097600000 + a.g * 86400123::bigint, a.realm, a.op,
    'master', pg_temp.fx_id('client:master:security-admin-console'), pg_temp.fx_id('user:master:admin'),
    '192.168.49.1',
    'users/' || u.id || CASE WHEN a.op = 'ACTION' THEN '/reset-password' ELSE '' END,
    CASE WHEN a.op IN ('CREATE', 'UPDATE') THEN format(
        '{"id":"%s","createdTimestamp":%s,"username":"%s","enabled":%s,"totp":false,"emailVerified":%s,"firstName":%s,"lastName":%s,"email":%s,"attributes":{"locale":["fr"]},"disableableCredentialTypes":[],"requiredActions":[],"notBefore":0}',
        u.id, u.created, u.username, u.enabled, u.email_verified,
        coalesce(to_json(u.first_name)::text, 'null'), coalesce(to_json(u.last_name)::text, 'null'),
        coalesce(to_json(u.email)::text, 'null')) END,
    CASE WHEN a.g = 27 THEN 'unknown_error' END,
    'USER'
FROM (
    SELECT g, CASE WHEN g % 5 = 0 THEN 'partners' ELSE 'alfresco' END AS realm,
        (ARRAY['ACTION', 'CREATE', 'UPDATE', 'DELETE'])[g % 4 + 1] AS op
    FROM generate_series(1, 30) AS g
) AS a
JOIN fx_user AS u ON u.realm = a.realm AND u.i = CASE WHEN a.realm = 'alfresco' THEN (a.g * 37) % 600 + 1 ELSE (a.g * 37) % 120 + 1 END
ORDER BY a.g;

INSERT INTO admin_event_entity (id, admin_event_time, realm_id, operation_type, auth_realm_id, auth_client_id,
    auth_user_id, ip_address, resource_path, representation, error, resource_type)
VALUES
    (pg_temp.fx_id('admin-event:31'), 1625097600000 + 31 * 86400123::bigint, 'alfresco', 'UPDATE', 'master',
     pg_temp.fx_id('client:master:security-admin-console'), pg_temp.fx_id('user:master:admin'), '192.168.49.1',
     NULL,
     '{"id":"alfresco","realm":"alfresco","displayName":"Alfresco","notBefore":0,"revokeRefreshToken":false,'
        || '"accessTokenLifespan":300,"enabled":true,"sslRequired":"external","attributes":{'
        || (SELECT string_agg(format('"custom.attribute.%s":"%s"', lpad(g::text, 3, '0'),
                pg_temp.fx_b64(pg_temp.fx_bytes('realm-representation:' || g, 48))), ',' ORDER BY g)
            FROM generate_series(1, 160) AS g)
        || '},"smtpServer":{"from":"noreply@alfresco.example","fromDisplayName":"Alfresco · アルフレスコ",'
        || '"host":"smtp.example.com","port":"587","starttls":"true"},"internationalizationEnabled":true,'
        || '"supportedLocales":["en","de","fr","ja","zh-CN"],"defaultLocale":"en"}',
     NULL, 'REALM'),
    (pg_temp.fx_id('admin-event:32'), 1625097600000 + 32 * 86400123::bigint, 'alfresco', 'UPDATE', 'master',
     pg_temp.fx_id('client:master:security-admin-console'), pg_temp.fx_id('user:master:admin'), '192.168.49.1',
     'clients/' || pg_temp.fx_id('client:alfresco:alfresco'),
     '{"id":"' || pg_temp.fx_id('client:alfresco:alfresco') || '","clientId":"alfresco","name":"Alfresco",'
        || '"description":"Alfresco Digital Workspace · Share · ADF apps","enabled":true,"publicClient":true,'
        || '"redirectUris":['
        || (SELECT string_agg(format('"https://app%s.alfresco.example.com/*"', lpad(g::text, 3, '0')), ',' ORDER BY g)
            FROM generate_series(1, 150) AS g)
        || '],"webOrigins":["+"],"attributes":{"access.token.lifespan":"3600"}}',
     NULL, 'CLIENT');

-- ---------------------------------------------------------------------------------------
-- Constraints and indexes (Keycloak's names), added after the data as a dump would
-- ---------------------------------------------------------------------------------------

ALTER TABLE ONLY databasechangeloglock ADD CONSTRAINT pk_databasechangeloglock PRIMARY KEY (id);
ALTER TABLE ONLY migration_model ADD CONSTRAINT constraint_migmod PRIMARY KEY (id);
ALTER TABLE ONLY realm ADD CONSTRAINT constraint_4a PRIMARY KEY (id);
ALTER TABLE ONLY realm ADD CONSTRAINT uk_orvsdmla56612eaefiq6wl5oi UNIQUE (name);
ALTER TABLE ONLY realm_attribute ADD CONSTRAINT constraint_9 PRIMARY KEY (name, realm_id);
ALTER TABLE ONLY realm_events_listeners ADD CONSTRAINT constr_realm_events_listeners PRIMARY KEY (realm_id, value);
ALTER TABLE ONLY client ADD CONSTRAINT constraint_7 PRIMARY KEY (id);
ALTER TABLE ONLY client ADD CONSTRAINT uk_b71cjlbenv945rb6gcon438at UNIQUE (realm_id, client_id);
ALTER TABLE ONLY client_attributes ADD CONSTRAINT constraint_3c PRIMARY KEY (client_id, name);
ALTER TABLE ONLY redirect_uris ADD CONSTRAINT constraint_redirect_uris PRIMARY KEY (client_id, value);
ALTER TABLE ONLY keycloak_role ADD CONSTRAINT constraint_a PRIMARY KEY (id);
ALTER TABLE ONLY keycloak_role ADD CONSTRAINT "UK_J3RWUVD56ONTGSUHOGM184WW2-2" UNIQUE (name, client_realm_constraint);
ALTER TABLE ONLY composite_role ADD CONSTRAINT constraint_composite_role PRIMARY KEY (composite, child_role);
ALTER TABLE ONLY realm_default_roles ADD CONSTRAINT constraint_realm_default_roles PRIMARY KEY (realm_id, role_id);
ALTER TABLE ONLY realm_default_roles ADD CONSTRAINT uk_h4wpd7w4hsoolni3h0sw7btje UNIQUE (role_id);
ALTER TABLE ONLY client_default_roles ADD CONSTRAINT constr_client_default_roles PRIMARY KEY (client_id, role_id);
ALTER TABLE ONLY client_default_roles ADD CONSTRAINT uk_8aelwnibji49avxsrtuf6xjow UNIQUE (role_id);
ALTER TABLE ONLY scope_mapping ADD CONSTRAINT constraint_81 PRIMARY KEY (client_id, role_id);
ALTER TABLE ONLY keycloak_group ADD CONSTRAINT constraint_group PRIMARY KEY (id);
ALTER TABLE ONLY keycloak_group ADD CONSTRAINT sibling_names UNIQUE (realm_id, parent_group, name);
ALTER TABLE ONLY group_role_mapping ADD CONSTRAINT constraint_group_role PRIMARY KEY (role_id, group_id);
ALTER TABLE ONLY realm_default_groups ADD CONSTRAINT constr_realm_default_groups PRIMARY KEY (realm_id, group_id);
ALTER TABLE ONLY realm_default_groups ADD CONSTRAINT con_group_id_def_groups UNIQUE (group_id);
ALTER TABLE ONLY user_entity ADD CONSTRAINT constraint_fb PRIMARY KEY (id);
ALTER TABLE ONLY user_entity ADD CONSTRAINT uk_dykn684sl8up1crfei6eckhd7 UNIQUE (realm_id, email_constraint);
ALTER TABLE ONLY user_entity ADD CONSTRAINT uk_ru8tt6t700s9v50bu18ws5ha6 UNIQUE (realm_id, username);
ALTER TABLE ONLY user_attribute ADD CONSTRAINT constraint_user_attribute_pk PRIMARY KEY (id);
ALTER TABLE ONLY credential ADD CONSTRAINT constraint_f PRIMARY KEY (id);
ALTER TABLE ONLY user_role_mapping ADD CONSTRAINT constraint_c PRIMARY KEY (role_id, user_id);
ALTER TABLE ONLY user_group_membership ADD CONSTRAINT constraint_user_group PRIMARY KEY (group_id, user_id);
ALTER TABLE ONLY user_required_action ADD CONSTRAINT constraint_required_action PRIMARY KEY (required_action, user_id);
ALTER TABLE ONLY required_action_provider ADD CONSTRAINT constraint_req_act_prv_pk PRIMARY KEY (id);
ALTER TABLE ONLY component ADD CONSTRAINT constr_component_pk PRIMARY KEY (id);
ALTER TABLE ONLY component_config ADD CONSTRAINT constr_component_config_pk PRIMARY KEY (id);
ALTER TABLE ONLY event_entity ADD CONSTRAINT constraint_4 PRIMARY KEY (id);
ALTER TABLE ONLY admin_event_entity ADD CONSTRAINT constraint_admin_event_entity PRIMARY KEY (id);

CREATE INDEX idx_client_id ON client USING btree (client_id);
CREATE INDEX idx_compo_config_compo ON component_config USING btree (component_id);
CREATE INDEX idx_component_provider_type ON component USING btree (provider_type);
CREATE INDEX idx_component_realm ON component USING btree (realm_id);
CREATE INDEX idx_composite ON composite_role USING btree (composite);
CREATE INDEX idx_composite_child ON composite_role USING btree (child_role);
CREATE INDEX idx_event_time ON event_entity USING btree (realm_id, event_time);
CREATE INDEX idx_group_role_mapp_group ON group_role_mapping USING btree (group_id);
CREATE INDEX idx_keycloak_role_client ON keycloak_role USING btree (client);
CREATE INDEX idx_keycloak_role_realm ON keycloak_role USING btree (realm);
CREATE INDEX idx_realm_attr_realm ON realm_attribute USING btree (realm_id);
CREATE INDEX idx_realm_def_grp_realm ON realm_default_groups USING btree (realm_id);
CREATE INDEX idx_realm_evt_list_realm ON realm_events_listeners USING btree (realm_id);
CREATE INDEX idx_realm_master_adm_cli ON realm USING btree (master_admin_client);
CREATE INDEX idx_redir_uri_client ON redirect_uris USING btree (client_id);
CREATE INDEX idx_req_act_prov_realm ON required_action_provider USING btree (realm_id);
CREATE INDEX idx_scope_mapping_role ON scope_mapping USING btree (role_id);
CREATE INDEX idx_update_time ON migration_model USING btree (update_time);
CREATE INDEX idx_user_attribute ON user_attribute USING btree (user_id);
CREATE INDEX idx_user_credential ON credential USING btree (user_id);
CREATE INDEX idx_user_email ON user_entity USING btree (email);
CREATE INDEX idx_user_group_mapping ON user_group_membership USING btree (user_id);
CREATE INDEX idx_user_reqactions ON user_required_action USING btree (user_id);
CREATE INDEX idx_user_role_mapping ON user_role_mapping USING btree (user_id);

ALTER TABLE ONLY realm_attribute ADD CONSTRAINT fk_8shxd6l3e9atqukacxgpffptw FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY realm_events_listeners ADD CONSTRAINT fk_h846o4h0w8epx5nxev9f5y69j FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY client_attributes ADD CONSTRAINT fk3c47c64beacca966 FOREIGN KEY (client_id) REFERENCES client (id);
ALTER TABLE ONLY redirect_uris ADD CONSTRAINT fk_1burs8pb4ouj97h5wuppahv9f FOREIGN KEY (client_id) REFERENCES client (id);
ALTER TABLE ONLY keycloak_role ADD CONSTRAINT fk_6vyqfe4cn4wlq8r6kt5vdsj5c FOREIGN KEY (realm) REFERENCES realm (id);
ALTER TABLE ONLY composite_role ADD CONSTRAINT fk_a63wvekftu8jo1pnj81e7mce2 FOREIGN KEY (composite) REFERENCES keycloak_role (id);
ALTER TABLE ONLY composite_role ADD CONSTRAINT fk_gr7thllb9lu8q4vqa4524jjy8 FOREIGN KEY (child_role) REFERENCES keycloak_role (id);
ALTER TABLE ONLY realm_default_roles ADD CONSTRAINT fk_evudb1ppw84oxfax2drs03icc FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY realm_default_roles ADD CONSTRAINT fk_h4wpd7w4hsoolni3h0sw7btje FOREIGN KEY (role_id) REFERENCES keycloak_role (id);
ALTER TABLE ONLY client_default_roles ADD CONSTRAINT fk_nuilts7klwqw2h8m2b5joytky FOREIGN KEY (client_id) REFERENCES client (id);
ALTER TABLE ONLY client_default_roles ADD CONSTRAINT fk_8aelwnibji49avxsrtuf6xjow FOREIGN KEY (role_id) REFERENCES keycloak_role (id);
ALTER TABLE ONLY scope_mapping ADD CONSTRAINT fk_ouse064plmlr732lxjcn1q5f1 FOREIGN KEY (client_id) REFERENCES client (id);
ALTER TABLE ONLY scope_mapping ADD CONSTRAINT fk_p3rh9grku11kqfrs4fltt7rnq FOREIGN KEY (role_id) REFERENCES keycloak_role (id);
ALTER TABLE ONLY group_role_mapping ADD CONSTRAINT fk_group_role_group FOREIGN KEY (group_id) REFERENCES keycloak_group (id);
ALTER TABLE ONLY group_role_mapping ADD CONSTRAINT fk_group_role_role FOREIGN KEY (role_id) REFERENCES keycloak_role (id);
ALTER TABLE ONLY realm_default_groups ADD CONSTRAINT fk_def_groups_realm FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY realm_default_groups ADD CONSTRAINT fk_def_groups_group FOREIGN KEY (group_id) REFERENCES keycloak_group (id);
ALTER TABLE ONLY user_attribute ADD CONSTRAINT fk_5hrm2vlf9ql5fu043kqepovbr FOREIGN KEY (user_id) REFERENCES user_entity (id);
ALTER TABLE ONLY credential ADD CONSTRAINT fk_pfyr0glasqyl0dei3kl69r6v0 FOREIGN KEY (user_id) REFERENCES user_entity (id);
ALTER TABLE ONLY user_role_mapping ADD CONSTRAINT fk_c4fqv34p1mbylloxang7b1q3l FOREIGN KEY (user_id) REFERENCES user_entity (id);
ALTER TABLE ONLY user_group_membership ADD CONSTRAINT fk_user_group_user FOREIGN KEY (user_id) REFERENCES user_entity (id);
ALTER TABLE ONLY user_required_action ADD CONSTRAINT fk_6qj3w1jw9cvafhe19bwsiuvmd FOREIGN KEY (user_id) REFERENCES user_entity (id);
ALTER TABLE ONLY required_action_provider ADD CONSTRAINT fk_req_act_realm FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY component ADD CONSTRAINT fk_component_realm FOREIGN KEY (realm_id) REFERENCES realm (id);
ALTER TABLE ONLY component_config ADD CONSTRAINT fk_component_config FOREIGN KEY (component_id) REFERENCES component (id);

-- ---------------------------------------------------------------------------------------
-- Site customisations (not Keycloak's; see the header)
-- ---------------------------------------------------------------------------------------

-- Login-page logos per realm: bytea, one of them large enough to be TOASTed.
CREATE TABLE site_branding (
    realm_id character varying(36) NOT NULL,
    logo_png bytea NOT NULL,
    content_type character varying(64) DEFAULT 'image/png'::character varying NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    CONSTRAINT site_branding_pkey PRIMARY KEY (realm_id),
    CONSTRAINT site_branding_realm_fkey FOREIGN KEY (realm_id) REFERENCES realm (id)
);

INSERT INTO site_branding (realm_id, logo_png, content_type, updated_at) VALUES
    ('alfresco', '\x89504e470d0a1a0a'::bytea || pg_temp.fx_bytes('logo:alfresco', 8184), 'image/png', '2021-03-01 09:30:00'),
    ('partners', '\x89504e470d0a1a0a'::bytea || pg_temp.fx_bytes('logo:partners', 3064), 'image/png', '2021-03-02 16:45:10.25');

-- Daily login statistics, refreshed by a nightly job: a bigserial id (an owned sequence) and
-- an explicit sequence numbering the refresh batches.
CREATE SEQUENCE site_stats_batch_seq START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1;

CREATE TABLE site_login_stats (
    id bigserial NOT NULL,
    realm_id character varying(255) NOT NULL,
    day date NOT NULL,
    event_type character varying(255) NOT NULL,
    events integer NOT NULL,
    batch bigint NOT NULL,
    CONSTRAINT site_login_stats_pkey PRIMARY KEY (id),
    CONSTRAINT site_login_stats_day_key UNIQUE (realm_id, day, event_type)
);

CREATE FUNCTION site_refresh_login_stats() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    batch_no bigint := nextval('site_stats_batch_seq');
    n integer;
BEGIN
    DELETE FROM site_login_stats;
    INSERT INTO site_login_stats (realm_id, day, event_type, events, batch)
    SELECT e.realm_id, date '1970-01-01' + (e.event_time / 86400000)::integer, e.type, count(*), batch_no
    FROM event_entity AS e
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Earlier nightly runs moved both sequences on; tonight's run is refresh number 412.
DO $$
BEGIN
    PERFORM setval('site_login_stats_id_seq', 48213);
    PERFORM setval('site_stats_batch_seq', 411);
    PERFORM site_refresh_login_stats();
END
$$;

CREATE VIEW site_user_directory AS
SELECT r.name AS realm, u.username, u.email, u.first_name, u.last_name, u.enabled,
    (SELECT count(*) FROM credential AS c WHERE c.user_id = u.id) AS credentials
FROM user_entity AS u
JOIN realm AS r ON r.id = u.realm_id
WHERE u.service_account_client_link IS NULL;

COMMIT;
