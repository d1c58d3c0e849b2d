package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// artifactService is the twirp service of the results API that actions/upload-artifact v4 uses.
const artifactService = "/twirp/github.actions.results.api.v1.ArtifactService/"

// artifactMaxBlocks is Azure's limit of blocks in a block blob.
const artifactMaxBlocks = 50000

// artifactAttemptTimeout bounds one twirp call or one block upload.
const artifactAttemptTimeout = 2 * time.Minute

// artifactSession is the results service of the current job: its origin, the runtime token and
// the backend ids of the workflow run and job, read from the token.
type artifactSession struct {
	a     Artifact
	base  string
	token string
	runID string
	jobID string
}

func (a Artifact) session() (*artifactSession, error) {
	getenv := a.getenv
	if err := Available(getenv); err != nil {
		return nil, err
	}
	u, err := url.Parse(getenv("ACTIONS_RESULTS_URL"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("ACTIONS_RESULTS_URL is not an http(s) URL")
	}
	token := getenv("ACTIONS_RUNTIME_TOKEN")
	run, job, err := artifactBackendIDs(token)
	if err != nil {
		return nil, err
	}
	return &artifactSession{a: a, base: u.Scheme + "://" + u.Host, token: token, runID: run, jobID: job}, nil
}

// artifactBackendIDs reads the workflow run and job backend ids from the runtime token's scp
// claim ("... Actions.Results:<run>:<job> ..."), as the official toolkit does. The token's
// signature is not checked: the service does that.
func artifactBackendIDs(token string) (run, job string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("ACTIONS_RUNTIME_TOKEN %s: cannot tell this workflow run's artifacts", why)
	}
	parts := strings.Split(token, ".")
	if len(parts) < 2 {
		return bad("is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return bad("is not a JWT (its payload is not base64url)")
	}
	var claims struct {
		Scp json.RawMessage `json:"scp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return bad("is not a JWT (its payload is not JSON)")
	}
	var scopes []string
	var s string
	if json.Unmarshal(claims.Scp, &s) == nil {
		scopes = strings.Fields(s)
	} else {
		_ = json.Unmarshal(claims.Scp, &scopes)
	}
	for _, sc := range scopes {
		f := strings.Split(sc, ":")
		if len(f) == 3 && f[0] == "Actions.Results" && f[1] != "" && f[2] != "" {
			return f[1], f[2], nil
		}
	}
	return bad("has no Actions.Results:<run>:<job> scope in its scp claim")
}

// call makes one twirp call (JSON), retried on 429, 5xx and network errors, and returns the
// response's fields.
func (s *artifactSession) call(ctx context.Context, method string, in any) (artifactFields, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var out artifactFields
	err = s.a.retry(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+artifactService+method, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := s.a.do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if resp.StatusCode != http.StatusOK {
			return artifactStatusError(resp, data)
		}
		if err != nil {
			return artifactRetryable{err: err}
		}
		out = artifactFields{}
		if err := json.Unmarshal(data, &out); err != nil {
			return fmt.Errorf("the answer is not a JSON object: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifact service %s: %w", method, err)
	}
	return out, nil
}

func (s *artifactSession) ids() map[string]any {
	return map[string]any{"workflow_run_backend_id": s.runID, "workflow_job_run_backend_id": s.jobID}
}

// createArtifact creates the artifact and returns the signed URL to upload its zip to. No
// mime_type: act's server refuses fields it does not know. A non-zero expires is sent as
// expires_at (a protobuf Timestamp: RFC 3339, UTC); without it the service applies the
// repository's retention.
func (s *artifactSession) createArtifact(ctx context.Context, name string, expires time.Time) (string, error) {
	req := s.ids()
	req["name"], req["version"] = name, 4
	if !expires.IsZero() {
		req["expires_at"] = expires.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	out, err := s.call(ctx, "CreateArtifact", req)
	if err != nil {
		return "", err
	}
	var ok bool
	var signed string
	out.get("ok", &ok)
	out.get("signed_upload_url", &signed)
	if !ok || signed == "" {
		return "", fmt.Errorf("artifact service CreateArtifact: not ok (does an artifact %q already exist in this run?)", name)
	}
	return signed, nil
}

// finalizeArtifact finalizes the uploaded artifact and returns its id, 0 when the answer does
// not give one.
func (s *artifactSession) finalizeArtifact(ctx context.Context, name string, size int64, sha string) (int64, error) {
	req := s.ids()
	req["name"], req["size"], req["hash"] = name, strconv.FormatInt(size, 10), "sha256:"+sha
	out, err := s.call(ctx, "FinalizeArtifact", req)
	if err != nil {
		return 0, err
	}
	var ok bool
	out.get("ok", &ok)
	if !ok {
		return 0, fmt.Errorf("artifact service FinalizeArtifact: not ok")
	}
	id, _ := out.int64("artifact_id")
	return id, nil
}

// findArtifact checks that the current run has an artifact called name.
func (s *artifactSession) findArtifact(ctx context.Context, name string) error {
	req := s.ids()
	req["name_filter"] = name
	out, err := s.call(ctx, "ListArtifacts", req)
	if err != nil {
		return err
	}
	var list []artifactFields
	out.get("artifacts", &list)
	for _, item := range list {
		var n string
		item.get("name", &n)
		if n == name {
			return nil
		}
	}
	return fmt.Errorf("no artifact %q in this workflow run (the artifact store reads only the current run's artifacts)", name)
}

func (s *artifactSession) signedArtifactURL(ctx context.Context, name string) (string, error) {
	req := s.ids()
	req["name"] = name
	out, err := s.call(ctx, "GetSignedArtifactURL", req)
	if err != nil {
		return "", err
	}
	var signed string
	out.get("signed_url", &signed)
	if signed == "" {
		return "", fmt.Errorf("artifact service GetSignedArtifactURL: no signed_url in the answer")
	}
	return signed, nil
}

// artifactFields are the fields of a twirp JSON answer. GitHub's service names them as the
// proto does (signed_upload_url); act's answers in lowerCamelCase (signedUploadUrl).
type artifactFields map[string]json.RawMessage

// get decodes the field called proto (or its lowerCamelCase form) into v; an int64, which
// protojson writes as a string, may be read into a string.
func (f artifactFields) get(proto string, v any) bool {
	raw, ok := f[proto]
	if !ok {
		raw, ok = f[artifactCamel(proto)]
	}
	return ok && json.Unmarshal(raw, v) == nil
}

// int64 reads an int64 field, which protojson writes as a decimal string (and other encoders
// as a number).
func (f artifactFields) int64(proto string) (int64, bool) {
	var s string
	if f.get(proto, &s) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var n int64
	return n, f.get(proto, &n)
}

func artifactCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// upload streams what write writes to the signed URL as an Azure block blob: blocks of
// BlockSize put in order, then the block list. It returns the size and SHA-256 (hex) of
// everything written. Memory: one block.
func (a Artifact) upload(ctx context.Context, signed string, write func(io.Writer) error) (int64, string, error) {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		written <- err
	}()
	meter := progress.Start(ctx, a.Log, "upload progress", progress.Options{Attrs: []any{"store", "artifact"}})
	defer meter.Stop()
	size, sum, ids, err := a.putBlocks(ctx, signed, meter.Reader(pr))
	// Stop the writer (if the upload failed) and wait for it: it holds the bundle's files open.
	pr.CloseWithError(errors.New("upload stopped"))
	werr := <-written
	if err != nil {
		return 0, "", err
	}
	if werr != nil {
		return 0, "", werr
	}
	if err := a.putBlockList(ctx, signed, ids); err != nil {
		return 0, "", err
	}
	return size, sum, nil
}

func (a Artifact) putBlocks(ctx context.Context, signed string, r io.Reader) (int64, string, []string, error) {
	blockSize := a.BlockSize
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	buf := make([]byte, blockSize)
	h := sha256.New()
	var size int64
	var ids []string
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if len(ids) == artifactMaxBlocks {
				return 0, "", nil, fmt.Errorf("the bundle needs more than %d blocks of %d bytes: raise the block size", artifactMaxBlocks, blockSize)
			}
			// Azure wants block ids of one length, base64 encoded.
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%08d", len(ids)))
			if err := a.putBlock(ctx, signed, len(ids), id, buf[:n]); err != nil {
				return 0, "", nil, err
			}
			h.Write(buf[:n])
			size += int64(n)
			ids = append(ids, id)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return size, hex.EncodeToString(h.Sum(nil)), ids, nil
		}
		if err != nil {
			return 0, "", nil, err // the writer's error, through the pipe
		}
	}
}

func (a Artifact) putBlock(ctx context.Context, signed string, index int, id string, block []byte) error {
	u := artifactWithQuery(signed, "comp=block&blockid="+url.QueryEscape(id))
	err := a.retry(ctx, func(ctx context.Context) error {
		return a.blobPut(ctx, u, block, nil)
	})
	if err != nil {
		return fmt.Errorf("upload block %d to %s: %w", index, artifactRedact(signed), err)
	}
	return nil
}

func (a Artifact) putBlockList(ctx context.Context, signed string, ids []string) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		b.WriteString("<Latest>" + id + "</Latest>") // base64: nothing to escape
	}
	b.WriteString("</BlockList>")
	u := artifactWithQuery(signed, "comp=blocklist")
	hdr := http.Header{"Content-Type": {"application/xml"}, "X-Ms-Blob-Content-Type": {"application/zip"}}
	err := a.retry(ctx, func(ctx context.Context) error {
		return a.blobPut(ctx, u, b.Bytes(), hdr)
	})
	if err != nil {
		return fmt.Errorf("commit the block list of %s: %w", artifactRedact(signed), err)
	}
	return nil
}

func (a Artifact) blobPut(ctx context.Context, u string, body []byte, hdr http.Header) error {
	// The transport may still read a body after Do returned (when the server answered before
	// reading it all); detaching it keeps it off the block buffer, which is refilled next.
	rb := &artifactBody{r: bytes.NewReader(body)}
	defer rb.detach()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, rb)
	if err != nil {
		return artifactRedactError(err)
	}
	req.ContentLength = int64(len(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("X-Ms-Version", blobAPIVersion)
	resp, err := a.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return artifactStatusError(resp, data)
	}
	return nil
}

// artifactBody is a request body that can be cut off from its bytes.
type artifactBody struct {
	mu sync.Mutex
	r  *bytes.Reader
}

func (b *artifactBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.r == nil {
		return 0, errors.New("request body detached")
	}
	return b.r.Read(p)
}

func (b *artifactBody) detach() {
	b.mu.Lock()
	b.r = nil
	b.mu.Unlock()
}

// download writes the blob at the signed URL to f (from its start, again on each retry) and
// returns its size.
func (a Artifact) download(ctx context.Context, signed string, f *os.File) (int64, error) {
	var size int64
	err := a.retryFor(ctx, 0, func(ctx context.Context) error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, signed, nil)
		if err != nil {
			return artifactRedactError(err)
		}
		req.Header.Set("X-Ms-Version", blobAPIVersion)
		resp, err := a.do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return artifactStatusError(resp, data)
		}
		meter := progress.Start(ctx, a.Log, "download progress", progress.Options{Total: resp.ContentLength, Attrs: []any{"store", "artifact"}})
		defer meter.Stop()
		n, err := io.Copy(f, meter.Reader(resp.Body))
		if err != nil {
			if ctx.Err() == nil {
				return artifactRetryable{err: artifactRedactError(err)}
			}
			return err
		}
		if resp.ContentLength >= 0 && n != resp.ContentLength {
			return artifactRetryable{err: fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)}
		}
		size = n
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", artifactRedact(signed), err)
	}
	return size, nil
}

// blobAPIVersion is the blob service API version of the requests to signed URLs.
const blobAPIVersion = "2023-11-03"

// do sends req as this client; not getting any answer is a network error (retried).
func (a Artifact) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", "identity-upgrade")
	resp, err := a.client().Do(req)
	if err != nil {
		return nil, artifactNetError(err)
	}
	return resp, nil
}

func (a Artifact) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return http.DefaultClient
}

// artifactRetryable is a failure worth another try: 429, 5xx, a network error.
type artifactRetryable struct {
	err   error
	after time.Duration // Retry-After, if the server gave one
}

func (r artifactRetryable) Error() string { return r.err.Error() }
func (r artifactRetryable) Unwrap() error { return r.err }

// retry runs attempt, each try bounded by artifactAttemptTimeout, until it succeeds, fails for
// good, the attempts run out or ctx ends.
func (a Artifact) retry(ctx context.Context, attempt func(context.Context) error) error {
	return a.retryFor(ctx, artifactAttemptTimeout, attempt)
}

func (a Artifact) retryFor(ctx context.Context, timeout time.Duration, attempt func(context.Context) error) error {
	attempts := a.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	wait := a.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for i := 1; ; i++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := attempt(actx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w (last try: %v)", ctx.Err(), err)
		}
		var r artifactRetryable
		if err == nil || !errors.As(err, &r) {
			return err
		}
		if i >= attempts {
			return fmt.Errorf("%d tries: %w", i, err)
		}
		d := max(wait+rand.N(wait/4+1), r.after)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last try: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// artifactStatusError describes a failed answer: its status, and the twirp, REST API or Azure
// message.
func artifactStatusError(resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var tw struct {
		Code    string `json:"code"`
		Msg     string `json:"msg"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &tw) == nil {
		switch {
		case tw.Code != "" || tw.Msg != "":
			msg = strings.TrimSpace(tw.Code + ": " + tw.Msg)
		case tw.Message != "":
			msg = tw.Message
		}
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	err := fmt.Errorf("HTTP %s", resp.Status)
	if msg != "" {
		err = fmt.Errorf("HTTP %s: %s", resp.Status, msg)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		r := artifactRetryable{err: err}
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			r.after = min(time.Duration(s)*time.Second, time.Minute)
		}
		return r
	}
	return err
}

// artifactNetError makes a transport error retryable, unless the context ended, with the
// signed URL's query (a credential) taken out.
func artifactNetError(err error) error {
	// A try's own timeout is worth another try too; retry checks the caller's context.
	return artifactRetryable{err: artifactRedactError(err)}
}

func artifactRedactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = artifactRedact(ue.URL)
	}
	return err
}

// artifactRedact drops the query of a signed URL: it holds the signature.
func artifactRedact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func artifactWithQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}
