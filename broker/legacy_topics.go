package broker

import (
	"fmt"
	"sort"
)

// maxProductTopics: OneNET's MQTT product holds at most 100 custom topics
// (broker/README.md, "What OneNET does"); a topic is created by the topic
// API or by the first subscription to it.
const maxProductTopics = 100

// errTopicLimit: the product holds maxProductTopics topics already.
var errTopicLimit = fmt.Errorf("system limit: a product holds at most %d topics", maxProductTopics)

// useTopic creates topic in the product unless it exists; past the
// product's bound it fails.
func (r *Registry) useTopic(pid, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topics == nil {
		r.topics = map[string]map[string]struct{}{}
	}
	ts := r.topics[pid]
	if _, ok := ts[topic]; ok {
		return nil
	}
	if len(ts) >= maxProductTopics {
		return errTopicLimit
	}
	if ts == nil {
		ts = map[string]struct{}{}
		r.topics[pid] = ts
	}
	ts[topic] = struct{}{}
	return nil
}

// productTopics lists a product's topics, sorted.
func (r *Registry) productTopics(pid string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.topics[pid]))
	for t := range r.topics[pid] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
