// Command nodepool-sync is the e2e harness's stand-in for a Cluster API
// infrastructure provider: it keeps KWOK fake Nodes in step with each
// MachineDeployment's spec.replicas.
//
// For every MachineDeployment (cluster.x-k8s.io/v1beta1) it
//   - creates Nodes <md>-<i> for i in [0, spec.replicas), labelled
//     ballast.dev/node-pool=<md> and ballast.dev/node-pool-namespace=<ns> and
//     annotated kwok.x-k8s.io/node=fake so KWOK manages them (KWOK's stages
//     make them Ready);
//   - cordons, drains and deletes the highest-numbered Nodes of the pool when
//     spec.replicas drops (and every Node of a pool whose MachineDeployment is
//     gone);
//   - writes status.replicas, readyReplicas, availableReplicas,
//     updatedReplicas, unavailableReplicas, selector, observedGeneration and
//     phase through the status subresource, so /scale reports real numbers.
//
// It is level-triggered: every watch event (and a periodic resync) runs one
// pass over all pools.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	poolLabel      = "ballast.dev/node-pool"
	poolNSLabel    = "ballast.dev/node-pool-namespace"
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "ballast-e2e-nodepool-sync"
)

var mdGVR = schema.GroupVersionResource{Group: "cluster.x-k8s.io", Version: "v1beta1", Resource: "machinedeployments"}

type syncer struct {
	kube      kubernetes.Interface
	dyn       dynamic.Interface
	cpu, mem  string
	maxPods   string
	maxNodes  int
	lastPrint map[string]string
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "path to the admin kubeconfig")
	resync := flag.Duration("resync", 10*time.Second, "full pass at least this often, even without watch events")
	cpu := flag.String("node-cpu", "4", "allocatable CPU of each fake Node")
	mem := flag.String("node-memory", "16Gi", "allocatable memory of each fake Node")
	pods := flag.String("node-pods", "110", "allocatable pods of each fake Node")
	maxNodes := flag.Int("max-nodes-per-pool", 200, "refuse to create more Nodes than this for one pool (guards against a runaway spec)")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("nodepool-sync: load kubeconfig %q: %v", *kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = managedBy
	s := &syncer{
		kube: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg),
		cpu: *cpu, mem: *mem, maxPods: *pods, maxNodes: *maxNodes, lastPrint: map[string]string{},
	}
	for _, q := range []string{*cpu, *mem, *pods} {
		if _, err := resource.ParseQuantity(q); err != nil {
			log.Fatalf("nodepool-sync: bad quantity %q: %v", q, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	go s.watchLoop(ctx, "machinedeployments", kick, func(ctx context.Context) (watch.Interface, error) {
		return s.dyn.Resource(mdGVR).Namespace(metav1.NamespaceAll).Watch(ctx, metav1.ListOptions{})
	})
	go s.watchLoop(ctx, "nodes", kick, func(ctx context.Context) (watch.Interface, error) {
		return s.kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + managedBy})
	})

	log.Printf("nodepool-sync: started (resync %s)", *resync)
	ticker := time.NewTicker(*resync)
	defer ticker.Stop()
	kick()
	for {
		select {
		case <-ctx.Done():
			log.Printf("nodepool-sync: stopping")
			return
		case <-trigger:
		case <-ticker.C:
		}
		// Coalesce bursts of events (KWOK heartbeats, our own writes).
		time.Sleep(200 * time.Millisecond)
		select {
		case <-trigger:
		default:
		}
		if err := s.syncAll(ctx); err != nil && ctx.Err() == nil {
			log.Printf("nodepool-sync: pass failed (will retry): %v", err)
			time.AfterFunc(time.Second, kick)
		}
	}
}

// watchLoop turns watch events into kicks, re-opening the watch when it ends.
func (s *syncer) watchLoop(ctx context.Context, what string, kick func(), open func(context.Context) (watch.Interface, error)) {
	for ctx.Err() == nil {
		w, err := open(ctx)
		if err != nil {
			// The MachineDeployment CRD may not be installed yet.
			time.Sleep(time.Second)
			continue
		}
		for range w.ResultChan() {
			kick()
		}
		w.Stop()
		kick()
	}
}

func (s *syncer) syncAll(ctx context.Context) error {
	mds, err := s.dyn.Resource(mdGVR).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil // CRD not installed yet
		}
		return fmt.Errorf("list machinedeployments: %w", err)
	}
	nodes, err := s.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + managedBy})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	byPool := map[string][]corev1.Node{}
	for _, n := range nodes.Items {
		key := n.Labels[poolNSLabel] + "/" + n.Labels[poolLabel]
		byPool[key] = append(byPool[key], n)
	}
	seen := map[string]bool{}
	var firstErr error
	for i := range mds.Items {
		md := &mds.Items[i]
		key := md.GetNamespace() + "/" + md.GetName()
		seen[key] = true
		if err := s.syncPool(ctx, md, byPool[key]); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("pool %s: %w", key, err)
		}
	}
	// Pools whose MachineDeployment is gone lose their Nodes.
	for key, ns := range byPool {
		if seen[key] {
			continue
		}
		for _, n := range ns {
			if err := s.deleteNode(ctx, n.Name, key); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

func (s *syncer) syncPool(ctx context.Context, md *unstructured.Unstructured, nodes []corev1.Node) error {
	key := md.GetNamespace() + "/" + md.GetName()
	want := int64(1) // Cluster API's defaulting webhook sets 1 when unset.
	if r, found, err := unstructured.NestedInt64(md.Object, "spec", "replicas"); err != nil {
		return fmt.Errorf("read spec.replicas: %w", err)
	} else if found {
		want = r
	}
	if want < 0 {
		want = 0
	}
	if want > int64(s.maxNodes) {
		log.Printf("nodepool-sync: pool %s asks for %d nodes; capping at --max-nodes-per-pool=%d", key, want, s.maxNodes)
		want = int64(s.maxNodes)
	}

	have := map[int]corev1.Node{}
	for _, n := range nodes {
		if i, ok := ordinal(nodePrefix(md), n.Name); ok {
			have[i] = n
		} else if err := s.deleteNode(ctx, n.Name, key); err != nil {
			return err
		}
	}
	// Scale down: remove the highest ordinals first.
	idx := make([]int, 0, len(have))
	for i := range have {
		idx = append(idx, i)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	// Cordon every Node that goes before draining any, so pods drained from
	// one are not rescheduled onto another that is about to go.
	for _, i := range idx {
		if int64(i) >= want {
			if err := s.cordon(ctx, have[i].Name); err != nil {
				return err
			}
		}
	}
	for _, i := range idx {
		if int64(i) >= want {
			if err := s.deleteNode(ctx, have[i].Name, key); err != nil {
				return err
			}
			delete(have, i)
		}
	}
	// Scale up: fill the missing ordinals below want.
	for i := 0; int64(i) < want; i++ {
		if _, ok := have[i]; ok {
			continue
		}
		n, err := s.createNode(ctx, md, i)
		if err != nil {
			return err
		}
		have[i] = *n
	}

	var ready int64
	for _, n := range have {
		if nodeReady(&n) && n.DeletionTimestamp == nil {
			ready++
		}
	}
	total := int64(len(have))
	return s.updateStatus(ctx, md, want, total, ready)
}

// nodePrefix names a pool's Nodes: "<md>-<i>" for MachineDeployments in the
// default namespace, "<namespace>-<md>-<i>" elsewhere (Nodes are cluster-scoped).
func nodePrefix(md *unstructured.Unstructured) string {
	if md.GetNamespace() == metav1.NamespaceDefault {
		return md.GetName()
	}
	return md.GetNamespace() + "-" + md.GetName()
}

func ordinal(prefix, node string) (int, bool) {
	rest, ok := strings.CutPrefix(node, prefix+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (s *syncer) createNode(ctx context.Context, md *unstructured.Unstructured, i int) (*corev1.Node, error) {
	name := fmt.Sprintf("%s-%d", nodePrefix(md), i)
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(s.cpu),
		corev1.ResourceMemory: resource.MustParse(s.mem),
		corev1.ResourcePods:   resource.MustParse(s.maxPods),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				poolLabel:                          name_(md.GetName()),
				poolNSLabel:                        md.GetNamespace(),
				managedByLabel:                     managedBy,
				"type":                             "kwok",
				"kubernetes.io/hostname":           name,
				"kubernetes.io/os":                 "linux",
				"kubernetes.io/arch":               "amd64",
				"node.kubernetes.io/instance-type": "kwok",
				"cluster.x-k8s.io/deployment-name": name_(md.GetName()),
			},
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":           "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    rl,
			Allocatable: rl,
			Phase:       corev1.NodeRunning,
			NodeInfo: corev1.NodeSystemInfo{
				Architecture: "amd64", OperatingSystem: "linux",
				KubeletVersion: "fake", KubeProxyVersion: "fake",
			},
		},
	}
	created, err := s.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{FieldManager: managedBy})
	if apierrors.IsAlreadyExists(err) {
		return s.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	log.Printf("nodepool-sync: pool %s/%s: created node %s", md.GetNamespace(), md.GetName(), name)
	return created, nil
}

// name_ keeps a label value valid (63 chars max) for long pool names.
func name_(s string) string {
	if len(s) > 63 {
		return s[:63]
	}
	return s
}

func (s *syncer) cordon(ctx context.Context, name string) error {
	_, err := s.kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{FieldManager: managedBy})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cordon node %s: %w", name, err)
	}
	return nil
}

// deleteNode drains the Node (deletes the pods bound to it, as Cluster API
// does before it deletes a Machine, so their controllers recreate them on the
// remaining Nodes at once instead of after the pod GC's 40 s quarantine), then
// deletes it.
func (s *syncer) deleteNode(ctx context.Context, name, pool string) error {
	pods, err := s.kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
	if err != nil {
		return fmt.Errorf("list pods on node %s: %w", name, err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if err := s.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("drain node %s: delete pod %s/%s: %w", name, p.Namespace, p.Name, err)
		}
	}
	if len(pods.Items) > 0 {
		log.Printf("nodepool-sync: pool %s: drained %d pods from node %s", pool, len(pods.Items), name)
	}
	err = s.kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	if err == nil {
		log.Printf("nodepool-sync: pool %s: deleted node %s", pool, name)
	}
	return nil
}

func (s *syncer) updateStatus(ctx context.Context, md *unstructured.Unstructured, want, total, ready int64) error {
	selector := fmt.Sprintf("%s=%s,%s=%s", poolNSLabel, md.GetNamespace(), poolLabel, name_(md.GetName()))
	phase := "Running"
	switch {
	case total < want:
		phase = "ScalingUp"
	case total > want:
		phase = "ScalingDown"
	case ready < want:
		phase = "ScalingUp"
	}
	unavailable := want - ready
	if unavailable < 0 {
		unavailable = 0
	}
	status := map[string]interface{}{
		"replicas":            total,
		"readyReplicas":       ready,
		"availableReplicas":   ready,
		"updatedReplicas":     total,
		"unavailableReplicas": unavailable,
		"selector":            selector,
		"observedGeneration":  md.GetGeneration(),
		"phase":               phase,
	}
	old, _, _ := unstructured.NestedMap(md.Object, "status")
	if sameStatus(old, status) {
		return nil
	}
	u := md.DeepCopy()
	if err := unstructured.SetNestedField(u.Object, status, "status"); err != nil {
		return err
	}
	_, err := s.dyn.Resource(mdGVR).Namespace(md.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: managedBy})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("update status: conflict (retrying)")
	}
	if err != nil {
		return fmt.Errorf("update status of machinedeployment %s/%s: %w", md.GetNamespace(), md.GetName(), err)
	}
	line := fmt.Sprintf("spec.replicas=%d status.replicas=%d ready=%d phase=%s", want, total, ready, phase)
	key := md.GetNamespace() + "/" + md.GetName()
	if s.lastPrint[key] != line {
		log.Printf("nodepool-sync: pool %s: %s", key, line)
		s.lastPrint[key] = line
	}
	return nil
}

func sameStatus(old, want map[string]interface{}) bool {
	if old == nil {
		return false
	}
	for k, v := range want {
		if fmt.Sprint(old[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}
