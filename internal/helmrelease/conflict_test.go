package helmrelease

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// TestConflicted: a 409 is a conflict whether it arrives as the API error or, as helm's update
// reports the errors of its objects, flattened into one string; the mark keeps the message.
func TestConflicted(t *testing.T) {
	typed := apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "identity-id-keycloak",
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	flattened := errors.New("failed to replace object: " + typed.Error() + " && failed to replace object: another")
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{typed, true},
		{fmt.Errorf("failed to replace object: %w", typed), true},
		{flattened, true},
		{errors.New("another operation (install/upgrade/rollback) is in progress"), false},
		{apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "x"), false},
		{nil, false},
	} {
		if got := conflicted(tt.err); got != tt.want {
			t.Errorf("conflicted(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	marked := fmt.Errorf("rollback: %w", &conflictError{flattened})
	if !errors.Is(marked, rollout.ErrConflict) || marked.Error() != "rollback: "+flattened.Error() {
		t.Errorf("marked: Is(ErrConflict) %v, message %q", errors.Is(marked, rollout.ErrConflict), marked)
	}
}
