package kubeauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// EKS tokens: "k8s-aws-v1." and the base64url of a presigned STS GetCallerIdentity URL whose
// signed headers include x-k8s-aws-id, the cluster's name. The cluster's authenticator calls
// STS with it to learn the caller's ARN, and accepts it for 15 minutes after it was signed.
const (
	eksTokenPrefix  = "k8s-aws-v1."
	eksClusterIDKey = "x-k8s-aws-id"
	eksTokenLife    = 15 * time.Minute
)

type awsSource struct {
	cluster string
	region  string
	role    string
	cfg     aws.Config
	client  *sts.Client
}

// newAWS takes the job's AWS credentials as the SDK finds them (AWS_ACCESS_KEY_ID and friends
// as aws-actions/configure-aws-credentials exports them, AWS_ROLE_ARN with
// AWS_WEB_IDENTITY_TOKEN_FILE, a profile, the instance's role) and, with a role in the
// kubeconfig (--role-arn, -r), assumes it.
func newAWS(ctx context.Context, p plugin, getenv func(string) string, ws Workspace, hc *http.Client) (*awsSource, error) {
	if p.cluster == "" {
		return nil, errors.New("no EKS cluster name: use the kubeconfig aws eks update-kubeconfig writes (its exec stanza, or its cluster named by the cluster's ARN)")
	}
	region := firstOf(p.region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	if region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (aws-actions/configure-aws-credentials sets it) or give --region in the kubeconfig's exec stanza")
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		// Credentials that expire are renewed a minute before, so a token is never signed with
		// credentials about to lapse.
		config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = time.Minute }),
	}
	if p.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(p.profile))
	}
	if hc != nil {
		opts = append(opts, config.WithHTTPClient(hc))
	}
	if file := getenv("AWS_WEB_IDENTITY_TOKEN_FILE"); file != "" {
		mapped, err := ws.Path(file)
		if err != nil {
			return nil, fmt.Errorf("AWS_WEB_IDENTITY_TOKEN_FILE: %w", err)
		}
		opts = append(opts, config.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) {
			o.TokenRetriever = stscreds.IdentityTokenFile(mapped)
		}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	if p.role != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), p.role),
			func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = time.Minute })
	}
	return &awsSource{cluster: p.cluster, region: region, role: p.role, cfg: cfg, client: sts.NewFromConfig(cfg)}, nil
}

func (s *awsSource) token(ctx context.Context) (string, time.Time, error) {
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("AWS credentials: %w", err)
	}
	signed := time.Now()
	presign := sts.NewPresignClient(s.client, func(o *sts.PresignOptions) {
		o.ClientOptions = append(o.ClientOptions, func(o *sts.Options) {
			o.Credentials = credentials.StaticCredentialsProvider{Value: creds}
		})
	})
	// The default presigner is set by the time the call's options apply.
	req, err := presign.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.PresignOptions) {
		o.Presigner = clusterPresigner{next: o.Presigner, cluster: s.cluster}
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("presign sts:GetCallerIdentity for EKS cluster %s: %w", s.cluster, err)
	}
	expiry := signed.Add(eksTokenLife)
	if creds.CanExpire && creds.Expires.Before(expiry) {
		expiry = creds.Expires
	}
	return eksTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL)), expiry, nil
}

// clusterPresigner signs the cluster's name into the URL, in the header x-k8s-aws-id.
type clusterPresigner struct {
	next    sts.HTTPPresignerV4
	cluster string
}

func (p clusterPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string,
	signingTime time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	r.Header.Set(eksClusterIDKey, p.cluster)
	// Hoisted into the query as X-Amz-Expires: the URL's validity, which EKS caps at 15 minutes.
	r.Header.Set("X-Amz-Expires", "60")
	return p.next.PresignHTTP(ctx, creds, r, payloadHash, service, region, signingTime, optFns...)
}

func (s *awsSource) identity(ctx context.Context) string {
	out, err := s.client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err == nil && out.Arn != nil {
		return *out.Arn
	}
	creds, cerr := s.cfg.Credentials.Retrieve(ctx)
	switch {
	case cerr != nil:
		return fmt.Sprintf("unknown AWS identity (%v)", cerr)
	case s.role != "":
		return fmt.Sprintf("role %s (access key %s; sts:GetCallerIdentity failed: %v)", s.role, creds.AccessKeyID, err)
	default:
		return fmt.Sprintf("access key %s (sts:GetCallerIdentity failed: %v)", creds.AccessKeyID, err)
	}
}

func (s *awsSource) hint() string {
	return fmt.Sprintf("give this IAM identity access to EKS cluster %s in %s: an access entry (aws eks create-access-entry) or the aws-auth ConfigMap, with a Kubernetes user bound to the Role in the README", s.cluster, s.region)
}
