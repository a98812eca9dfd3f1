package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-engine/presence/events"
)

// sealKeySize is the size of the key that seals the feed's log references:
// AES-256.
const sealKeySize = 32

// sealer seals the log sequence of a feed entry's event into the entry's
// events.LogRefHeader, and opens it again: AES-256-GCM under a key that only
// engines hold (events.EngineBucket), with a fresh random nonce for each entry,
// so that no two refs compare, and the entry's bytes as additional data, so
// that a ref opens only on the entry it was made for. Subscribers read every
// header of an entry: to them a ref is 48 characters of noise, the same length
// for every entry. Its methods are safe for concurrent use.
type sealer struct {
	aead cipher.AEAD
}

// newSealer returns a sealer under key, which must be sealKeySize bytes.
func newSealer(key []byte) (*sealer, error) {
	if len(key) != sealKeySize {
		return nil, fmt.Errorf("engine: the feed's seal key is %d bytes, want %d", len(key), sealKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// refLen is the length of a sealed ref, base64 without padding: a nonce, the
// sealed 8 bytes of the log sequence and the tag.
var refLen = base64.RawURLEncoding.EncodedLen(12 + 8 + 16)

// seal returns the ref of the entry data whose event is at log sequence
// logSeq.
func (s *sealer) seal(logSeq uint64, data []byte) (string, error) {
	var buf [12 + 8 + 16]byte
	nonce := buf[:s.aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("draw a nonce: %w", err)
	}
	var plain [8]byte
	binary.BigEndian.PutUint64(plain[:], logSeq)
	sealed := s.aead.Seal(nonce, nonce, plain[:], data)
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// errRef: a ref that does not open under this engine's key on its entry.
var errRef = errors.New("the log reference does not open under this engine's key")

// open returns the log sequence sealed in ref, made for the entry data. It
// fails with errRef when ref is missing, malformed, made under another key or
// for another entry.
func (s *sealer) open(ref string, data []byte) (uint64, error) {
	if len(ref) != refLen {
		return 0, errRef
	}
	raw, err := base64.RawURLEncoding.DecodeString(ref)
	if err != nil {
		return 0, errRef
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], data)
	if err != nil || len(plain) != 8 {
		return 0, errRef
	}
	return binary.BigEndian.Uint64(plain), nil
}

// sealKey returns the key that seals the feed's log references, from
// events.EngineBucket: drawn by the first engine, and created with Create, so
// that engines that race to draw one all end up with the one that won.
func sealKey(ctx context.Context, kv jetstream.KeyValue, logger *slog.Logger) ([]byte, error) {
	for range 3 {
		entry, err := answered(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
			return kv.Get(ctx, events.FeedSealKey)
		})
		switch {
		case err == nil && len(entry.Value()) == sealKeySize:
			return entry.Value(), nil
		case err == nil:
			return nil, fmt.Errorf("key %s of bucket %s holds %d bytes, not a %d-byte key; delete it to have a new one drawn (the feed is then derived again)",
				events.FeedSealKey, events.EngineBucket, len(entry.Value()), sealKeySize)
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return nil, fmt.Errorf("read key %s of bucket %s: %w", events.FeedSealKey, events.EngineBucket, err)
		}
		key := make([]byte, sealKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("draw the feed's seal key: %w", err)
		}
		_, err = answered(ctx, func(ctx context.Context) (uint64, error) { return kv.Create(ctx, events.FeedSealKey, key) })
		if err == nil {
			logger.Info("drew the key that seals the feed's log references", "bucket", events.EngineBucket, "key", events.FeedSealKey)
			return key, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("keep the feed's seal key in bucket %s: %w", events.EngineBucket, err)
		}
		// Another engine drew one first: read it.
	}
	return nil, fmt.Errorf("key %s of bucket %s is created and removed again under this engine", events.FeedSealKey, events.EngineBucket)
}
