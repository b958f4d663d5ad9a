// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis keeps the records where every relay of a group reads them: one
// string key per call, named by the call-id as the incumbent names its keys,
// holding relayd's JSON record (not the incumbent's format: a database is
// relayd's or the incumbent's, not both), written with an expiry so that
// records of calls no relay ended (every relay of the group gone) do not
// stay for ever. The Writer refreshes records before they expire.
type Redis struct {
	c   *redis.Client
	cfg RedisConfig
}

// RedisConfig says which server and database, and how long records live.
type RedisConfig struct {
	Addr     string // host:port
	Password string
	DB       int
	// Expires is the records' lifetime (the incumbent's redis-expires);
	// 0 keeps them until deleted.
	Expires time.Duration
	// Timeout bounds connecting and each command (default 2 s).
	Timeout time.Duration
}

// IdentityKey holds the DTLS certificate and key every relay of the group
// uses, so that a taken-over call's SDP keeps its a=fingerprint. It is the
// one key of a database that is not a call's.
const IdentityKey = "relayd:dtls-identity"

// OpenRedis makes the client; it does not connect until used (Ping checks).
func OpenRedis(cfg RedisConfig) *Redis {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Redis{c: newRedisClient(cfg), cfg: cfg}
}

func newRedisClient(cfg RedisConfig) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB,
		// RESP2: what every Redis (and look-alike) speaks; keyspace
		// notifications need nothing newer.
		Protocol:        2,
		DisableIdentity: true,
		// No retries inside the client: the Writer retries with its own
		// pause, and a standby resynchronises after a reconnect.
		MaxRetries:  -1,
		DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		PoolSize: 4, PoolTimeout: cfg.Timeout,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// Ping checks the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	return nil
}

// Put stores callID's record with the configured expiry.
func (r *Redis) Put(ctx context.Context, callID string, record []byte) error {
	if callID == IdentityKey {
		return fmt.Errorf("call-id %q is reserved", callID)
	}
	return r.c.Set(ctx, callID, record, r.cfg.Expires).Err()
}

// Delete removes callID's record.
func (r *Redis) Delete(ctx context.Context, callID string) error {
	if callID == IdentityKey {
		return nil
	}
	return r.c.Del(ctx, callID).Err()
}

// Get reads callID's record.
func (r *Redis) Get(ctx context.Context, callID string) ([]byte, error) {
	b, err := r.c.Get(ctx, callID).Bytes()
	if errors.Is(err, redis.Nil) || callID == IdentityKey {
		return nil, fmt.Errorf("%s: %w", callID, ErrNotFound)
	}
	return b, err
}

// GetMany reads the records of ids in one round trip; a missing one is nil.
func (r *Redis) GetMany(ctx context.Context, ids []string) ([][]byte, error) {
	vals, err := r.c.MGet(ctx, ids...).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, v := range vals {
		if s, ok := v.(string); ok && ids[i] != IdentityKey {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// IDs lists the keys of the database (SCAN, so the server is never held
// up), the identity key left out.
func (r *Redis) IDs(ctx context.Context) ([]string, error) {
	var ids []string
	it := r.c.Scan(ctx, 0, "", 1000).Iterator()
	for it.Next(ctx) {
		if k := it.Val(); k != IdentityKey {
			ids = append(ids, k)
		}
	}
	return ids, it.Err()
}

// Generation is the server's run id: it changes when Redis restarts, which
// (without persistence) means every record is gone and the Writer writes
// all of its calls again.
func (r *Redis) Generation(ctx context.Context) (string, error) {
	info, err := r.c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("INFO server has no run_id")
}

// Shared reports that other relays read these records: a record one relay
// cannot use is not removed (another may use it).
func (r *Redis) Shared() bool { return true }

// Identity reads the group's DTLS identity (ErrNotFound when none).
func (r *Redis) Identity(ctx context.Context) ([]byte, error) {
	b, err := r.c.Get(ctx, IdentityKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return b, err
}

// ShareIdentity stores pem as the group's DTLS identity in place of old
// (nil: only if there is none) and returns the identity in force: pem, or
// the one another relay stored first.
func (r *Redis) ShareIdentity(ctx context.Context, old, pem []byte) ([]byte, error) {
	// Compare-and-set in one script: two relays renewing at once agree on
	// one certificate.
	const cas = `local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return cur`
	v, err := r.c.Eval(ctx, cas, []string{IdentityKey}, string(old), string(pem)).Text()
	if err != nil {
		return nil, fmt.Errorf("share DTLS identity: %w", err)
	}
	return []byte(v), nil
}

// Close closes the client.
func (r *Redis) Close() error { return r.c.Close() }

func (r *Redis) String() string {
	return "redis " + r.cfg.Addr + "/" + strconv.Itoa(r.cfg.DB)
}

// RouteRedisLogs sends go-redis's own messages (reconnects, pool errors)
// to log at debug level: relayd's warnings already say when Redis fails.
// go-redis keeps one logger per process, so the daemon calls this once.
func RouteRedisLogs(log *slog.Logger) { redis.SetLogger(redisLog{log}) }

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Log(ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "component", "go-redis")
}
