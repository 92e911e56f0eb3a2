package backend

// KVParams describes one KVAttention call: B query rows of Tn new tokens
// each, attending to a key/value cache of S rows ("slots") of MaxT
// positions. Q and out are (B, Tn, NH, HS); the new K and V are
// (B, Tn, KVH, HS); each layer's caches are (S, MaxT, KVH, HS), keys after
// RoPE. NH is a multiple of KVH (grouped-query attention).
type KVParams struct {
	B, Tn, NH, KVH, HS int
	S, MaxT            int
	// Slots[b] is the cache row of query row b (distinct rows); nil means
	// row b uses slot b.
	Slots []int32
	// Start[b] is the number of cache positions slot Slots[b] held before
	// this call: the new keys and values go to positions Start[b]+t, and
	// new token t attends to the slot's positions 0..Start[b]+t.
	Start []int32
	// KeyMask, if non-nil, is (S, MaxT): cache position j of slot s may be
	// attended only if KeyMask[s*MaxT+j] != 0 (left padding is masked).
	// A query with no attendable key gets out = 0.
	KeyMask []int32
}
