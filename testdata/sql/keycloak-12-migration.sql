-- keycloak-12-migration.sql: what Keycloak 12.0.4 (Alfresco Identity Service 1.4) does to the
-- keycloak-11.sql database on its first start, simplified.
--
-- Run it as the database owner, like keycloak-11.sql, on a database loaded from that file.
--
-- Keycloak 12 migrates in two steps, both reproduced here in the order Keycloak runs them:
--   1. Liquibase, under its lock (databasechangeloglock id 1): the two changesets of
--      META-INF/jpa-changelog-12.0.0.xml, each recorded in databasechangelog (rows 87 and 88,
--      with Keycloak's real ids and checksums, in a new deployment).
--        map-remove-ri                          drops six foreign keys to keycloak_role and
--                                               keycloak_group (the fixture has five of those
--                                               tables; client_scope_role_mapping is not in it)
--        12.1.0-add-realm-localization-table    creates realm_localizations
--   2. The model migration MigrateTo12_0_0: every realm's account client gets the
--      delete-account role, and every realm gets the disabled delete_account required action.
--      Then the new version is recorded in migration_model (12.0.4).
--
-- Fixture devices (not what Keycloak 12 does): the two fixture_kc12_* columns and the rows
-- they change at the end, so that tests also see added columns and updated rows.

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET search_path = public;

BEGIN;

-- Same id helper as keycloak-11.sql (temporary).
CREATE OR REPLACE FUNCTION pg_temp.fx_id(seed text) RETURNS varchar
LANGUAGE sql IMMUTABLE AS $$
  SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
      || substr('89ab', 1 + (('x' || substr(h, 17, 1))::bit(4)::int % 4), 1) || substr(h, 18, 3)
      || '-' || substr(h, 21, 12)
  FROM md5(seed) AS h
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Liquibase
-- ---------------------------------------------------------------------------------------

UPDATE databasechangeloglock
SET locked = true, lockgranted = '2021-10-04 07:12:08.877', lockedby = 'alfresco-identity-service-0 (10.42.0.23)'
WHERE id = 1;

-- Changeset META-INF/jpa-changelog-12.0.0.xml::map-remove-ri::keycloak
ALTER TABLE ONLY realm_default_groups DROP CONSTRAINT fk_def_groups_group;
ALTER TABLE ONLY realm_default_roles DROP CONSTRAINT fk_h4wpd7w4hsoolni3h0sw7btje;
ALTER TABLE ONLY group_role_mapping DROP CONSTRAINT fk_group_role_role;
ALTER TABLE ONLY client_default_roles DROP CONSTRAINT fk_8aelwnibji49avxsrtuf6xjow;
ALTER TABLE ONLY scope_mapping DROP CONSTRAINT fk_p3rh9grku11kqfrs4fltt7rnq;

INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum,
    description, comments, tag, liquibase, contexts, labels, deployment_id)
VALUES ('map-remove-ri', 'keycloak', 'META-INF/jpa-changelog-12.0.0.xml', '2021-10-04 07:12:09.301', 87,
    'EXECUTED', '7:578d0b92077eaf2ab95ad0ec087aa903',
    'dropForeignKeyConstraint baseTableName=REALM_DEFAULT_GROUPS, constraintName=FK_DEF_GROUPS_GROUP; dropForeignKeyConstraint baseTableName=REALM_DEFAULT_ROLES, constraintName=FK_H4WPD7W4HSOOLNI3H0SW7BTJE; dropForeignKeyConstraint baseTableName=CLIENT...',
    '', NULL, '3.5.4', NULL, NULL, '3331529114');

-- Changeset META-INF/jpa-changelog-12.0.0.xml::12.1.0-add-realm-localization-table::keycloak
CREATE TABLE realm_localizations (
    realm_id character varying(255) NOT NULL,
    locale character varying(255) NOT NULL,
    texts text NOT NULL
);
ALTER TABLE ONLY realm_localizations ADD CONSTRAINT realm_localizations_pkey PRIMARY KEY (realm_id, locale);

INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum,
    description, comments, tag, liquibase, contexts, labels, deployment_id)
VALUES ('12.1.0-add-realm-localization-table', 'keycloak', 'META-INF/jpa-changelog-12.0.0.xml',
    '2021-10-04 07:12:09.334', 88, 'EXECUTED', '7:c95abe90d962c57a09ecaee57972835d',
    'createTable tableName=REALM_LOCALIZATIONS; addPrimaryKey tableName=REALM_LOCALIZATIONS',
    '', NULL, '3.5.4', NULL, NULL, '3331529114');

UPDATE databasechangeloglock SET locked = false, lockgranted = NULL, lockedby = NULL WHERE id = 1;

-- ---------------------------------------------------------------------------------------
-- 2. MigrateTo12_0_0
-- ---------------------------------------------------------------------------------------

INSERT INTO keycloak_role (id, client_realm_constraint, client_role, description, name, realm_id, client, realm)
SELECT pg_temp.fx_id('role:' || c.realm_id || ':account:delete-account'), c.id, true, '${role_delete-account}',
    'delete-account', c.realm_id, c.id, NULL
FROM client AS c
WHERE c.client_id = 'account'
ORDER BY c.realm_id;

INSERT INTO required_action_provider (id, alias, name, realm_id, enabled, default_action, provider_id, priority)
SELECT pg_temp.fx_id('required-action:' || r.id || ':delete_account'), 'delete_account', 'Delete Account', r.id,
    false, false, 'delete_account', 60
FROM realm AS r
ORDER BY r.id;

INSERT INTO migration_model (id, version, update_time) VALUES ('tnc4e', '12.0.4', 1633331534);

-- ---------------------------------------------------------------------------------------
-- Fixture devices: added columns and changed rows (not Keycloak's)
-- ---------------------------------------------------------------------------------------

ALTER TABLE user_entity ADD COLUMN fixture_kc12_note character varying(255);
ALTER TABLE client ADD COLUMN fixture_kc12_checked boolean DEFAULT false NOT NULL;

UPDATE user_entity SET fixture_kc12_note = 'vérifié ✓ ' || username WHERE realm_id = 'partners';
UPDATE client SET fixture_kc12_checked = true WHERE realm_id = 'alfresco';

COMMIT;
