package rehearsal

import (
	"context"
	"fmt"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// schemaState says where Keycloak's schema is: its Liquibase changesets and the newest
// migration model version.
func schemaState(ctx context.Context, db testworld.Database) (string, error) {
	out, err := db.Run(ctx, `SELECT count(*) || ' changesets (latest "' ||
		coalesce((SELECT id FROM databasechangelog ORDER BY orderexecuted DESC LIMIT 1), '') ||
		'"), migration model ' ||
		coalesce((SELECT version FROM migration_model ORDER BY update_time DESC LIMIT 1), 'none')
		FROM databasechangelog`)
	if err != nil {
		return "", fmt.Errorf("read the schema state: %w", err)
	}
	return strings.TrimSpace(out), nil
}
