// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"errors"
)

// ErrNotFound means the backend holds no record for the call.
var ErrNotFound = errors.New("no stored state for the call")

// Backend stores one opaque record per call-id. Implementations are safe for
// concurrent use; every method may fail (a store across the network does),
// and the Writer retries.
type Backend interface {
	// Put stores the record of callID, replacing any.
	Put(ctx context.Context, callID string, record []byte) error
	// Delete removes the record of callID; a missing one is no error.
	Delete(ctx context.Context, callID string) error
	// Get returns the record of callID, ErrNotFound when there is none.
	Get(ctx context.Context, callID string) ([]byte, error)
	// IDs lists the call-ids with a record.
	IDs(ctx context.Context) ([]string, error)
	// Close releases the backend's resources.
	Close() error
	// String says where records go, for logs.
	String() string
}
