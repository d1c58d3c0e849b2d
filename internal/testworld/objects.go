package testworld

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreatePullSecret creates, in the namespace, an image pull Secret called name (a
// kubernetes.io/dockerconfigjson with no registry in it): what the 1.4-like chart's pods
// reference as quay-registry-secret, and a user of the real chart creates before the upgrade.
func (k Kube) CreatePullSecret(ctx context.Context, name string) error {
	_, err := k.Client.CoreV1().Secrets(k.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create image pull secret %s: %w", name, err)
	}
	return nil
}

// CreateClaim creates, in the namespace, a PersistentVolumeClaim called name without a
// storage class, which binds to one of the cluster's volumes: a claim such as the
// alfresco-volume-claim the real charts expect to exist.
func (k Kube) CreateClaim(ctx context.Context, name string) error {
	empty := ""
	_, err := k.Client.CoreV1().PersistentVolumeClaims(k.Namespace).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &empty,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create claim %s: %w", name, err)
	}
	return nil
}
