package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// heapShare is the part of the finished database that the table data takes; the rest is the
// indexes, built after the bulk load. Loading stops when the tables reach heapShare of the
// target, so that the finished database is about the target size.
const heapShare = 0.79

// Rows are loaded in chunks of at most maxChunk units (one unit: one event_entity row and two
// user_attribute rows, about 1 KiB with indexes), each chunk one psql session well inside the
// test world's two-minute limit.
const (
	firstChunk = 10000
	maxChunk   = 100000
)

// generate builds a Keycloak-shaped database of about target bytes in db: the Keycloak 11
// schema and rows of testdata/sql/keycloak-11.sql, then bulk rows in event_entity and
// user_attribute made with generate_series. The data is deterministic (md5-derived ids and
// values, no random()), so the same target gives the same rows. It returns the database size.
func generate(ctx context.Context, db testworld.Database, moduleDir string, target int64, logf func(string, ...any)) (int64, error) {
	fixture, err := os.ReadFile(filepath.Join(moduleDir, "testdata", "sql", "keycloak-11.sql"))
	if err != nil {
		return 0, err
	}
	if _, err := db.Run(ctx, "SET ROLE "+db.Owner+";\n"+string(fixture)); err != nil {
		return 0, fmt.Errorf("load keycloak-11.sql: %w", err)
	}
	// Bulk loading is faster without the indexes; they are built once at the end, as the
	// fixture itself does.
	if _, err := db.Run(ctx, "SET ROLE "+db.Owner+`;
		ALTER TABLE event_entity DROP CONSTRAINT constraint_4;
		DROP INDEX idx_event_time;
		ALTER TABLE user_attribute DROP CONSTRAINT constraint_user_attribute_pk;
		DROP INDEX idx_user_attribute;`); err != nil {
		return 0, fmt.Errorf("drop indexes: %w", err)
	}
	size, err := dbSize(ctx, db)
	if err != nil {
		return 0, err
	}
	heapTarget := int64(float64(target) * heapShare)
	var next int64 // first unit of the next chunk
	units := int64(firstChunk)
	for size < heapTarget {
		before := size
		if size, err = loadChunk(ctx, db, next, units); err != nil {
			return 0, err
		}
		next += units
		perUnit := max(1, (size-before)/units)
		units = min(maxChunk, max(1000, (heapTarget-size)/perUnit+1))
		logf("  %d units, tables %.0f of %.0f MiB", next, mib(size), mib(heapTarget))
	}

	for _, stmt := range []string{
		"ALTER TABLE ONLY event_entity ADD CONSTRAINT constraint_4 PRIMARY KEY (id)",
		"CREATE INDEX idx_event_time ON event_entity USING btree (realm_id, event_time)",
		"ALTER TABLE ONLY user_attribute ADD CONSTRAINT constraint_user_attribute_pk PRIMARY KEY (id)",
		"CREATE INDEX idx_user_attribute ON user_attribute USING btree (user_id)",
	} {
		if _, err := db.Run(ctx, "SET ROLE "+db.Owner+"; SET maintenance_work_mem = '256MB';\n"+stmt); err != nil {
			return 0, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	// Hint bits and statistics now, so that the first contestant does not pay for them.
	if _, err := db.Run(ctx, "VACUUM (FREEZE, ANALYZE)"); err != nil {
		return 0, fmt.Errorf("vacuum: %w", err)
	}
	if _, err := db.Run(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return dbSize(ctx, db)
}

func dbSize(ctx context.Context, db testworld.Database) (int64, error) {
	out, err := db.Run(ctx, "SELECT pg_database_size(current_database())")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// loadChunk inserts units [first, first+n) and returns the database size after it.
func loadChunk(ctx context.Context, db testworld.Database, first, n int64) (int64, error) {
	sql := strings.NewReplacer("$lo", strconv.FormatInt(first, 10), "$hi", strconv.FormatInt(first+n-1, 10), "$owner", db.Owner).Replace(chunkSQL)
	out, err := db.Run(ctx, sql)
	if err != nil {
		return 0, fmt.Errorf("load rows %d-%d: %w", first, first+n-1, err)
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// chunkSQL loads units $lo..$hi: an event per unit (login flows: realistic JSON details,
// session and code ids) and two user attributes per unit (LDAP-federated users' attributes)
// of the fixture's users.
const chunkSQL = `
SET synchronous_commit = off;
SET ROLE $owner;
CREATE FUNCTION pg_temp.bid(seed text) RETURNS varchar LANGUAGE sql IMMUTABLE AS $$
  SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' || substr(h, 18, 3) || '-' || substr(h, 21, 12)
  FROM md5(seed) AS h
$$;
INSERT INTO event_entity (id, client_id, details_json, error, ip_address, realm_id, session_id, event_time, type, user_id)
SELECT pg_temp.bid('bench-event:' || g),
    (ARRAY['account', 'admin-cli', 'alfresco', 'security-admin-console', 'share', 'aps'])[g % 6 + 1],
    format('{"auth_method":"openid-connect","auth_type":"code","response_type":"code","redirect_uri":"https://app%s.example.com/alfresco/callback?state=%s","consent":"no_consent_required","code_id":"%s","username":"user%s@example.com","response_mode":"fragment"}',
        g % 40, md5('state:' || g), pg_temp.bid('code:' || g), g % 50000),
    CASE WHEN g % 17 = 0 THEN 'invalid_user_credentials' END,
    '10.' || (g % 251) || '.' || (g / 251 % 256) || '.' || (g / 64256 % 256),
    (ARRAY['alfresco', 'alfresco', 'alfresco', 'partners', 'master'])[g % 5 + 1],
    pg_temp.bid('session:' || g / 4),
    1600000000000 + g * 977,
    (ARRAY['LOGIN', 'CODE_TO_TOKEN', 'REFRESH_TOKEN', 'LOGOUT', 'LOGIN_ERROR', 'CODE_TO_TOKEN'])[g % 6 + 1],
    pg_temp.bid('user:' || g % 50000)
FROM generate_series($lo::bigint, $hi::bigint) AS g;
INSERT INTO user_attribute (name, value, user_id, id)
SELECT (ARRAY['LDAP_ID', 'LDAP_ENTRY_DN', 'createTimestamp', 'modifyTimestamp', 'employeeNumber', 'department', 'phone', 'locale'])[a % 8 + 1],
    CASE a % 8
      WHEN 0 THEN pg_temp.bid('ldap:' || a)
      WHEN 1 THEN 'uid=user' || a || ',ou=People,ou=' || (ARRAY['Engineering', 'Sales', 'Légal', '研究開発'])[a % 4 + 1] || ',dc=example,dc=com'
      WHEN 2 THEN to_char(to_timestamp(1500000000 + a * 61) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS') || 'Z'
      WHEN 3 THEN to_char(to_timestamp(1600000000 + a * 37) AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS') || 'Z'
      WHEN 4 THEN lpad((a * 7919 % 100000000)::text, 8, '0')
      WHEN 5 THEN (ARRAY['Engineering', 'Sales', 'Support', 'Finance', 'Légal', '研究開発', 'Маркетинг'])[a % 7 + 1]
      WHEN 6 THEN '+49 30 ' || lpad((a * 104729 % 10000000)::text, 7, '0')
      ELSE (ARRAY['en', 'de', 'fr', 'ja', 'zh-CN'])[a % 5 + 1]
    END,
    u.ids[1 + (a / 8) % array_length(u.ids, 1)],
    pg_temp.bid('bench-attribute:' || a)
FROM generate_series(2 * $lo::bigint, 2 * $hi::bigint + 1) AS a,
    (SELECT array_agg(id ORDER BY id) AS ids FROM user_entity) AS u;
SELECT pg_database_size(current_database());
`
