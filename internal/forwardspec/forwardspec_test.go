package forwardspec

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Spec{
		"service/identity-postgresql-id":          {Kind: KindService, Name: "identity-postgresql-id"},
		"service/identity-postgresql-id:5432":     {Kind: KindService, Name: "identity-postgresql-id", Port: "5432"},
		"pod/identity-postgresql-id-0:tcp-pg":     {Kind: KindPod, Name: "identity-postgresql-id-0", Port: "tcp-pg"},
		"pod/identity-postgresql-id-0:postgresql": {Kind: KindPod, Name: "identity-postgresql-id-0", Port: "postgresql"},
		"service/db.example:65535":                {Kind: KindService, Name: "db.example", Port: "65535"},
		"pod/db:0x10":                             {Kind: KindPod, Name: "db", Port: "0x10"}, // a port name
	} {
		got, err := Parse(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	long := "service/" + strings.Repeat("a", 254)
	for _, in := range []string{"", "auto", "deployment/db", "statefulset/db", "service/", "service/DB", "pod/db:0",
		"pod/db:70000", "pod/db:123456", "pod/db:", "pod/db:+5432", "pod/db:-1", "service/db:Bad_Name",
		"service/db:a-very-long-port-name", "pod/a/b", "pod/-db", "pod/db:x:y", long} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, got)
		}
	}
}

func TestParseSecretRef(t *testing.T) {
	got, err := ParseSecretRef("secret/identity-postgresql-id:postgresql-password")
	if err != nil || got != (SecretRef{Name: "identity-postgresql-id", Key: "postgresql-password"}) || got.String() != "secret/identity-postgresql-id:postgresql-password" {
		t.Errorf("got %+v, %v", got, err)
	}
	if got, err := ParseSecretRef("secret/db:DB_PASSWORD.v1"); err != nil || got.Key != "DB_PASSWORD.v1" {
		t.Errorf("a key with upper case, '_' and '.': %+v, %v", got, err)
	}
	for _, in := range []string{"identity-postgresql-id:postgresql-password", "secret/identity", "secret/:key", "secret/x:",
		"secret/X:key", "secret/x:a/b", "secret/x:a:b", "Secret/x:key"} {
		if got, err := ParseSecretRef(in); err == nil {
			t.Errorf("ParseSecretRef(%q) = %+v, want an error", in, got)
		}
	}
}
