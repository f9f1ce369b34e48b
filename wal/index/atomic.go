package index

import "sync/atomic"

func atomicLoad(p *uint64) uint64 { return atomic.LoadUint64(p) }
