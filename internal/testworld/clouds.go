package testworld

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// Stand-ins of the token services of managed clusters, served by the test on 127.0.0.1: AWS
// STS (the EKS token is a presigned GetCallerIdentity URL, checked here offline as STS would
// check its signature), Google's STS and IAM Credentials (workload identity federation, as
// google-github-actions/auth configures it) and Microsoft Entra ID (over TLS: its client library
// refuses anything else). Each issues credentials of a lifetime the test chooses and gives the
// cluster's token webhook a validator (Kube.AcceptTokens) that accepts only what it issued,
// until it expires.

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))[:n]
}

// STS is a stand-in of AWS STS: AssumeRoleWithWebIdentity and GetCallerIdentity, the access
// keys it knows with their identity and expiry, and the EKS token check.
type STS struct {
	URL string // http://127.0.0.1:port, for AWS_ENDPOINT_URL_STS

	// Lifetime is that of the credentials AssumeRoleWithWebIdentity issues (default an hour).
	Lifetime time.Duration
	// WebIdentityToken and RoleARN are what AssumeRoleWithWebIdentity accepts.
	WebIdentityToken, RoleARN string

	mu       sync.Mutex
	keys     map[string]awsKey
	assumed  int
	accepted map[string]bool // EKS tokens accepted, to count them
}

type awsKey struct {
	secret, session, arn string
	expires              time.Time // zero: never
}

// StartSTS starts the stand-in until the test ends.
func StartSTS(t testing.TB) *STS {
	s := &STS{keys: map[string]awsKey{}, accepted: map[string]bool{}, Lifetime: time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Key issues static credentials of identity arn, as aws-actions/configure-aws-credentials
// exports them.
func (s *STS) Key(arn string) (id, secret, session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, secret, session = "ASIA"+randomID(16), randomID(40), randomID(64)
	s.keys[id] = awsKey{secret: secret, session: session, arn: arn}
	return id, secret, session
}

// Assumed is how many credentials AssumeRoleWithWebIdentity issued.
func (s *STS) Assumed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assumed
}

// Secrets are every secret the stand-in issued or accepted (secret keys, session tokens, EKS
// tokens), for tests that check none is shown.
func (s *STS) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		out = append(out, k.secret, k.session)
	}
	for tok := range s.accepted {
		out = append(out, tok, strings.TrimPrefix(tok, "k8s-aws-v1."))
	}
	return out
}

// Accepted is how many different EKS tokens were accepted.
func (s *STS) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// assume answers action (AssumeRole or AssumeRoleWithWebIdentity) with new temporary
// credentials of role's session, which the stand-in then knows; extra goes into the result
// after the assumed role.
func (s *STS) assume(w http.ResponseWriter, action, role, session, extra string) {
	arn := strings.Replace(strings.Replace(role, ":iam:", ":sts:", 1), ":role/", ":assumed-role/", 1) + "/" + session
	s.mu.Lock()
	id, secret, token := "ASIA"+randomID(16), randomID(40), randomID(64)
	expires := time.Now().Add(s.Lifetime).UTC()
	s.keys[id] = awsKey{secret: secret, session: token, arn: arn, expires: expires}
	s.assumed++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%[1]sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><%[1]sResult><Credentials><AccessKeyId>%[2]s</AccessKeyId><SecretAccessKey>%[3]s</SecretAccessKey><SessionToken>%[4]s</SessionToken><Expiration>%[5]s</Expiration></Credentials><AssumedRoleUser><Arn>%[6]s</Arn><AssumedRoleId>AROA%[7]s:%[8]s</AssumedRoleId></AssumedRoleUser>%[9]s</%[1]sResult><ResponseMetadata><RequestId>%[10]s</RequestId></ResponseMetadata></%[1]sResponse>`,
		action, id, secret, token, expires.Format(time.RFC3339), arn, randomID(12), session, extra, randomID(8))
}

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fail := func(code int, awsCode, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, awsCode, msg, randomID(8))
	}
	switch r.Form.Get("Action") {
	case "AssumeRoleWithWebIdentity":
		if r.Form.Get("WebIdentityToken") != s.WebIdentityToken || s.WebIdentityToken == "" || r.Form.Get("RoleArn") != s.RoleARN {
			fail(http.StatusBadRequest, "InvalidIdentityToken", "the web identity token or role is not the one this stand-in accepts")
			return
		}
		s.assume(w, "AssumeRoleWithWebIdentity", s.RoleARN, firstNonEmpty(r.Form.Get("RoleSessionName"), "session"),
			"<SubjectFromWebIdentityToken>repo:example</SubjectFromWebIdentityToken>")
	case "AssumeRole":
		// Any key this stand-in issued may assume any role (a trust policy is not modelled).
		_, rest, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		caller, _, _ := strings.Cut(rest, "/")
		s.mu.Lock()
		_, known := s.keys[caller]
		s.mu.Unlock()
		role := r.Form.Get("RoleArn")
		if !known || !strings.Contains(role, ":role/") {
			fail(http.StatusForbidden, "AccessDenied", "not authorized to perform sts:AssumeRole")
			return
		}
		s.assume(w, "AssumeRole", role, firstNonEmpty(r.Form.Get("RoleSessionName"), "session"), "")
	case "GetCallerIdentity":
		// The caller is the access key of the request's signature (not checked: only the
		// identity is asked for).
		_, rest, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		id, _, _ := strings.Cut(rest, "/")
		s.mu.Lock()
		k, ok := s.keys[id]
		s.mu.Unlock()
		if !ok {
			fail(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
			return
		}
		account := strings.Split(k.arn, ":")[4]
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>%s</Arn><UserId>AROA%s</UserId><Account>%s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
			k.arn, randomID(12), account, randomID(8))
	default:
		fail(http.StatusBadRequest, "InvalidAction", "not served by this stand-in")
	}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// VerifyEKSToken checks an EKS token as the cluster's authenticator and STS do together,
// without the network: "k8s-aws-v1." and a base64url presigned URL of this stand-in for
// GetCallerIdentity, signed (SigV4, query parameters) by a key it issued that has not expired,
// less than 15 minutes ago, with the cluster's name in the signed header x-k8s-aws-id. It
// returns the key's identity.
func (s *STS) VerifyEKSToken(token, cluster string) (string, error) {
	encoded, ok := strings.CutPrefix(token, "k8s-aws-v1.")
	if !ok {
		return "", errors.New("no k8s-aws-v1. prefix")
	}
	raw, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return "", fmt.Errorf("not base64url: %w", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return "", err
	}
	if base, _ := url.Parse(s.URL); u.Host != base.Host {
		return "", fmt.Errorf("presigned for %s, not this STS", u.Host)
	}
	q := u.Query()
	if q.Get("Action") != "GetCallerIdentity" || q.Get("Version") != "2011-06-15" {
		return "", fmt.Errorf("not GetCallerIdentity: Action=%q Version=%q", q.Get("Action"), q.Get("Version"))
	}
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return "", fmt.Errorf("algorithm %q", q.Get("X-Amz-Algorithm"))
	}
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !contains(signed, "host") || !contains(signed, "x-k8s-aws-id") {
		return "", fmt.Errorf("signed headers %v lack host and x-k8s-aws-id", signed)
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[3] != "sts" || cred[4] != "aws4_request" {
		return "", fmt.Errorf("credential scope %q", q.Get("X-Amz-Credential"))
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return "", fmt.Errorf("X-Amz-Date: %w", err)
	}
	if age := time.Since(date); age > 15*time.Minute || age < -time.Minute {
		return "", fmt.Errorf("signed %s ago", age.Round(time.Second))
	}
	s.mu.Lock()
	key, ok := s.keys[cred[0]]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("access key %s unknown", cred[0])
	}
	if !key.expires.IsZero() && time.Now().After(key.expires) {
		return "", fmt.Errorf("access key %s expired %s ago", cred[0], time.Since(key.expires).Round(time.Millisecond))
	}
	if q.Get("X-Amz-Security-Token") != key.session {
		return "", errors.New("session token does not belong to the access key")
	}
	// The canonical request of a presigned GET: the query without the signature, the signed
	// headers (host, and x-k8s-aws-id as this cluster's name), and the empty payload's hash.
	headers := map[string]string{"host": u.Host, "x-k8s-aws-id": cluster}
	var canonHeaders strings.Builder
	for _, h := range signed {
		v, ok := headers[h]
		if !ok {
			return "", fmt.Errorf("signed header %q is not one an EKS token has", h)
		}
		canonHeaders.WriteString(h + ":" + v + "\n")
	}
	var params []string
	for k, vs := range q {
		if k == "X-Amz-Signature" {
			continue
		}
		for _, v := range vs {
			params = append(params, sigv4Escape(k)+"="+sigv4Escape(v))
		}
	}
	sort.Strings(params)
	empty := sha256.Sum256(nil)
	canonical := strings.Join([]string{"GET", firstNonEmpty(u.EscapedPath(), "/"), strings.Join(params, "&"), canonHeaders.String(),
		strings.Join(signed, ";"), hex.EncodeToString(empty[:])}, "\n")
	hashed := sha256.Sum256([]byte(canonical))
	scope := strings.Join(cred[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + q.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(hashed[:])
	k := hmacSHA256([]byte("AWS4"+key.secret), cred[1])
	for _, part := range cred[2:] {
		k = hmacSHA256(k, part)
	}
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(q.Get("X-Amz-Signature"))) {
		return "", errors.New("signature does not match (wrong cluster name, key or request)")
	}
	s.mu.Lock()
	s.accepted[token] = true
	s.mu.Unlock()
	return key.arn, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// sigv4Escape is SigV4's URI encoding: every byte but the unreserved characters as %XX.
func sigv4Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// EKSValidator accepts the EKS tokens of cluster that VerifyEKSToken accepts, as the user
// named by the identity's ARN.
func (s *STS) EKSValidator(cluster string) TokenValidator {
	return func(token string) (authenticationv1.UserInfo, bool) {
		arn, err := s.VerifyEKSToken(token, cluster)
		if err != nil {
			return authenticationv1.UserInfo{}, false
		}
		return authenticationv1.UserInfo{Username: arn, Groups: []string{"system:authenticated"}}, true
	}
}

// accessTokens are the bearer tokens an OAuth2 stand-in issued, with their user and expiry.
type accessTokens struct {
	mu     sync.Mutex
	tokens map[string]issuedToken
}

type issuedToken struct {
	user    string
	expires time.Time
}

func (a *accessTokens) issue(prefix, user string, life time.Duration) (string, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = map[string]issuedToken{}
	}
	tok, exp := prefix+randomID(48), time.Now().Add(life)
	a.tokens[tok] = issuedToken{user: user, expires: exp}
	return tok, exp
}

// Issued is how many tokens were issued.
func (a *accessTokens) Issued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.tokens)
}

// Secrets are the tokens issued, for tests that check none is shown.
func (a *accessTokens) Secrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for tok := range a.tokens {
		out = append(out, tok)
	}
	return out
}

func (a *accessTokens) validate(token string) (authenticationv1.UserInfo, bool) {
	a.mu.Lock()
	t, ok := a.tokens[token]
	a.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return authenticationv1.UserInfo{}, false
	}
	return authenticationv1.UserInfo{Username: t.user, Groups: []string{"system:authenticated"}}, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Google is a stand-in of workload identity federation as google-github-actions/auth sets it
// up: an OIDC token endpoint like GitHub's, Google's STS that exchanges that token, and IAM
// Credentials' generateAccessToken for the service account, whose access tokens GKE accepts.
type Google struct {
	URL            string
	ServiceAccount string        // the e-mail of the impersonated service account
	Lifetime       time.Duration // of the access tokens (default an hour)
	accessTokens

	subject, requestToken, federated string
}

// StartGoogle starts the stand-in until the test ends.
func StartGoogle(t testing.TB, serviceAccount string) *Google {
	g := &Google{ServiceAccount: serviceAccount, Lifetime: time.Hour, subject: "github-oidc-" + randomID(24),
		requestToken: "request-" + randomID(24), federated: "federated-" + randomID(24)}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// CredentialsFile writes, into dir, the credentials file google-github-actions/auth writes for
// workload identity federation through a service account, and returns its path.
func (g *Google) CredentialsFile(t testing.TB, dir string) string {
	t.Helper()
	audience := "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/github/providers/repo"
	conf := map[string]any{
		"type":                              "external_account",
		"audience":                          audience,
		"subject_token_type":                "urn:ietf:params:oauth:token-type:jwt",
		"token_url":                         g.URL + "/v1/token",
		"service_account_impersonation_url": g.URL + "/v1/projects/-/serviceAccounts/" + g.ServiceAccount + ":generateAccessToken",
		"credential_source": map[string]any{
			"url":     g.URL + "/oidc?audience=https://iam.googleapis.com" + strings.TrimPrefix(audience, "//iam.googleapis.com"),
			"headers": map[string]string{"Authorization": "Bearer " + g.requestToken},
			"format":  map[string]string{"type": "json", "subject_token_field_name": "value"},
		},
	}
	data, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(dir, "gha-creds-"+strings.ToLower(randomID(16))+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (g *Google) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oidc":
		if r.Header.Get("Authorization") != "Bearer "+g.requestToken {
			http.Error(w, "bad request token", http.StatusUnauthorized)
			return
		}
		writeJSON(w, map[string]string{"value": g.subject})
	case r.URL.Path == "/v1/token":
		r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || r.Form.Get("subject_token") != g.subject {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]string{"error": "invalid_grant", "error_description": "subject token not issued here"})
			return
		}
		writeJSON(w, map[string]any{"access_token": g.federated, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type": "Bearer", "expires_in": 3600})
	case strings.HasSuffix(r.URL.Path, ":generateAccessToken"):
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+g.federated ||
			r.URL.Path != "/v1/projects/-/serviceAccounts/"+g.ServiceAccount+":generateAccessToken" {
			http.Error(w, `{"error":{"code":403,"message":"permission denied"}}`, http.StatusForbidden)
			return
		}
		tok, exp := g.issue("ya29.", g.ServiceAccount, g.Lifetime)
		writeJSON(w, map[string]string{"accessToken": tok, "expireTime": exp.UTC().Format(time.RFC3339Nano)})
	default:
		http.NotFound(w, r)
	}
}

// Validator accepts the access tokens the stand-in issued, until they expire, as the user
// named by the service account's e-mail (as GKE does).
func (g *Google) Validator() TokenValidator { return g.validate }

// Entra is a stand-in of Microsoft Entra ID's token endpoint for one tenant, over TLS: the
// OpenID configuration and the client credentials grant with a federated assertion or a client
// secret, for the AKS server application's scope.
type Entra struct {
	URL      string // https://127.0.0.1:port/, for AZURE_AUTHORITY_HOST
	CAFile   string // the server's certificate, PEM, for SSL_CERT_FILE
	Client   *http.Client
	Tenant   string
	ClientID string
	// Assertion is the federated token accepted (the content of AZURE_FEDERATED_TOKEN_FILE),
	// Secret the client secret (AZURE_CLIENT_SECRET).
	Assertion, Secret string
	Lifetime          time.Duration // of the access tokens (default an hour)
	accessTokens

	oidcRequest string // the bearer of GitHubOIDC's requests
}

// GitHubOIDC is the stand-in of a job's OIDC token service (ACTIONS_ID_TOKEN_REQUEST_URL and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN, as GitHub sets them for a job with id-token: write): asked
// for Entra's audience, it answers with the federated token the stand-in accepts.
func (e *Entra) GitHubOIDC() (requestURL, requestToken string) {
	return e.URL + "github-oidc?api-version=2.0", e.oidcRequest
}

// StartEntra starts the stand-in until the test ends.
func StartEntra(t testing.TB) *Entra {
	e := &Entra{Tenant: "72f988bf-0000-4000-8000-" + strings.ToLower(randomID(12)), ClientID: "0c1d2e3f-0000-4000-8000-" + strings.ToLower(randomID(12)),
		Assertion: "federated-" + randomID(32), Secret: "secret-" + randomID(32), Lifetime: time.Hour, oidcRequest: "request-" + randomID(24)}
	srv := httptest.NewTLSServer(http.HandlerFunc(e.serve))
	t.Cleanup(srv.Close)
	e.URL, e.Client = srv.URL+"/", srv.Client()
	e.CAFile = filepath.Join(t.TempDir(), "entra-ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(e.CAFile, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *Entra) serve(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimSuffix(e.URL, "/")
	switch r.URL.Path {
	case "/github-oidc":
		if r.Header.Get("Authorization") != "Bearer "+e.oidcRequest || r.URL.Query().Get("audience") != "api://AzureADTokenExchange" {
			http.Error(w, "bad request token or audience", http.StatusForbidden)
			return
		}
		writeJSON(w, map[string]any{"count": 1, "value": e.Assertion})
	case "/" + e.Tenant + "/v2.0/.well-known/openid-configuration":
		writeJSON(w, map[string]string{
			"authorization_endpoint": base + "/" + e.Tenant + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/" + e.Tenant + "/oauth2/v2.0/token",
			"issuer":                 base + "/" + e.Tenant + "/v2.0",
		})
	case "/" + e.Tenant + "/oauth2/v2.0/token":
		r.ParseForm()
		assertion := r.Form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && r.Form.Get("client_assertion") == e.Assertion ||
			r.Form.Get("client_secret") == e.Secret
		if r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("client_id") != e.ClientID || !assertion ||
			!contains(strings.Fields(r.Form.Get("scope")), "6dae42f8-4368-4678-94ff-3960e28e3630/.default") {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]any{"error": "invalid_client", "error_description": "AADSTS700213: no matching federated identity record", "error_codes": []int{700213}})
			return
		}
		tok, exp := e.issue("eyJ0eXAiOiJKV1QiLCJ.", e.ClientID, e.Lifetime)
		secs := int(time.Until(exp).Round(time.Second).Seconds())
		writeJSON(w, map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok})
	default:
		http.NotFound(w, r)
	}
}

// Validator accepts the access tokens the stand-in issued, until they expire, as the user
// named by the client id.
func (e *Entra) Validator() TokenValidator { return e.validate }

// Secrets are the tokens the stand-in issued and the federation's tokens.
func (g *Google) Secrets() []string {
	return append(g.accessTokens.Secrets(), g.subject, g.requestToken, g.federated)
}

// Secrets are the tokens the stand-in issued and the federated assertion.
func (e *Entra) Secrets() []string {
	return append(e.accessTokens.Secrets(), e.Assertion, e.Secret, e.oidcRequest)
}
