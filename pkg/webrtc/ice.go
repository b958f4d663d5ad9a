// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/pion/stun/v4"

	"github.com/relayd/relayd/pkg/media"
)

// ICE credentials as the incumbent sizes them: comfortably above RFC 8445's
// minimums (4 and 22 ice-chars).
const (
	ufragLen = 8
	pwdLen   = 26
)

// Credentials are one side's ICE username fragment and password.
type Credentials struct {
	Ufrag, Pwd string
}

// NewCredentials draws fresh credentials from crypto/rand, in the ice-char
// alphabet (RFC 8839 §5.4) without '+' and '/', which some peers mishandle.
func NewCredentials() (Credentials, error) {
	u, err := randString(ufragLen)
	if err != nil {
		return Credentials{}, err
	}
	p, err := randString(pwdLen)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Ufrag: u, Pwd: p}, nil
}

func randString(n int) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw ICE credentials: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// ICE is the handler stage of an ICE-lite agent on one relay socket (RFC
// 8445 §2.5, lite role, always controlled): it answers authenticated STUN
// Binding requests with their XOR-MAPPED-ADDRESS and makes the source of an
// authenticated request carrying USE-CANDIDATE (the pair the peer
// nominated) the stream's source and destination; media from the source of
// any authenticated check is accepted (a valid pair). Nothing
// unauthenticated changes where media goes or is let in. A lite agent sends
// no checks of its own.
type ICE struct {
	local  Credentials
	remote atomic.Pointer[string] // the peer's ufrag, once its SDP is known
	c      *Counters
	// onNominated is called with each nominated source (SetOnNominated);
	// nominated is the latest, for a callback set after the nomination.
	onNominated atomic.Pointer[func(addr net.Addr)]
	nominated   atomic.Pointer[netip.AddrPort]
}

// SetOnNominated has fn called with the source of every nomination, on the
// stream's worker: a DTLS client handshake starts there. The peer's checks
// can overtake the answer that makes relayd the DTLS client (a browser
// starts ICE as soon as it has the offer, the answer still travels through
// the SIP proxy), so a nomination already seen calls fn at once, on the
// caller's goroutine; fn may then run twice and must be idempotent
// (DTLS.StartClient is).
func (i *ICE) SetOnNominated(fn func(addr net.Addr)) {
	i.onNominated.Store(&fn)
	if a := i.nominated.Load(); a != nil && fn != nil {
		fn(net.UDPAddrFromAddrPort(*a))
	}
}

// NewICE returns the stage answering with local's credentials.
func NewICE(local Credentials, c *Counters) *ICE { return &ICE{local: local, c: c} }

// Local is the agent's own credentials (what the SDP advertises).
func (i *ICE) Local() Credentials { return i.local }

// SetRemote records the peer's ufrag from its SDP: checks must then name
// both ("ours:theirs").
func (i *ICE) SetRemote(ufrag string) {
	if ufrag == "" {
		i.remote.Store(nil)
		return
	}
	i.remote.Store(&ufrag)
}

// Kernel is false: the kernel does not answer STUN.
func (*ICE) Kernel() bool { return false }

// Handle answers STUN; anything else goes on.
func (i *ICE) Handle(p *media.Packet) media.Verdict {
	if p.Kind != media.KindSTUN {
		return media.Continue
	}
	m := &stun.Message{Raw: append([]byte(nil), p.Data...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		// Indications (keepalives) and responses need no answer from a
		// lite agent; garbage gets none.
		i.c.STUNMalformed.Add(1)
		return media.Consume
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		i.c.STUNMalformed.Add(1)
		return media.Consume
	}
	var user stun.Username
	if err := user.GetFrom(m); err != nil {
		i.c.STUNBadUsername.Add(1)
		i.reject(p, m, stun.CodeBadRequest)
		return media.Consume
	}
	if !i.ours(string(user)) {
		i.c.STUNBadUsername.Add(1)
		i.reject(p, m, stun.CodeUnauthorized)
		return media.Consume
	}
	integrity := stun.NewShortTermIntegrity(i.local.Pwd)
	if err := integrity.Check(m); err != nil {
		i.c.STUNBadIntegrity.Add(1)
		i.reject(p, m, stun.CodeUnauthorized)
		return media.Consume
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: p.Source.Addr().AsSlice(), Port: int(p.Source.Port())},
		integrity, stun.Fingerprint)
	if err != nil {
		i.c.STUNMalformed.Add(1)
		return media.Consume
	}
	src := p.Source
	nominates := m.Contains(stun.AttrUseCandidate)
	if nominates {
		// Before the reply: whoever has it may rely on the nomination
		// being known (SetOnNominated).
		i.nominated.Store(&src)
	}
	p.Reply(resp.Raw)
	i.c.STUNAnswered.Add(1)
	// A valid pair: the peer may send on it whichever pair is nominated
	// (a controlling agent switches before its nomination arrives, and
	// one nominating several pairs may use any of them).
	p.Stream.Accept(p.Source)
	if nominates {
		i.c.ICENominations.Add(1)
		p.Stream.Latch(p.Source)
		if fn := i.onNominated.Load(); fn != nil && *fn != nil {
			(*fn)(net.UDPAddrFromAddrPort(src))
		}
	}
	return media.Consume
}

// ours checks a USERNAME of "<our ufrag>:<their ufrag>".
func (i *ICE) ours(user string) bool {
	mine, theirs, ok := strings.Cut(user, ":")
	if !ok || mine != i.local.Ufrag || theirs == "" {
		return false
	}
	if r := i.remote.Load(); r != nil && *r != theirs {
		return false
	}
	return true
}

// reject answers a Binding error (400/401, RFC 8445 §7.3.1.1) without
// integrity: the request could not be authenticated.
func (i *ICE) reject(p *media.Packet, m *stun.Message, code stun.ErrorCode) {
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(stun.MethodBinding, stun.ClassErrorResponse), code, stun.Fingerprint)
	if err == nil {
		p.Reply(resp.Raw)
	}
}
