// Package hop speaks the conventions of hop-client, SCiMMA's Python client
// for Hopskotch, so that what the robust producer (package kafka) publishes
// reads in hop as if hop had published it.
//
// # Message conventions
//
// hop-client marks every message it publishes with headers: "_id" (the
// message's 16-byte UUID), "_format" (the name of the model that encoded
// the value: "json", "blob", "voevent", "avro", "gcntextnotice", ...),
// "_sender" (the user name it authenticated as) and, for test messages,
// "_test". A hop consumer picks the model class that decodes the value by
// "_format" and skips test messages by default. [Marks] builds those
// headers, [NewRecord] a record that carries them, and [Check] tells
// whether a value fits its format. The robust producer adds the "_id"
// itself (Producer.Write), a random version 4 UUID as hop's.
//
//	rec := hop.NewRecord("", alertJSON, hop.Marks{Format: hop.FormatJSON, Sender: user})
//	if err := hop.Check(hop.FormatJSON, alertJSON); err != nil {
//		return err
//	}
//	err := producer.Write(ctx, rec)
//
// # Moving a hop journal over
//
// hop-client's RobustProducer journals every message in one file
// ("publisher.journal"): message records (version 1 and 2) and "sent"
// records that confirm them, each with a CRC-32 over its header and one
// over its body; journal.go documents the bytes. [ReadJournal] reads such
// a file and returns the messages no sent record confirms; [Import]
// appends them to a walpub journal directory, original "_id" included,
// where the robust producer sends them (walcat import-hop does this from
// the shell). Importing twice appends nothing twice.
//
// # Credentials
//
// hop-client keeps its credentials in auth.toml ([AuthPath]). [LoadAuth]
// and [LoadDefaultAuth] read it as hop does (refusing a file others may
// read), and [SelectCredential] picks the credential hop picks for a broker
// and an optional user (kafka://USER@host/...; [SplitURLUser]). walpub uses
// them when it is given no --sasl.
//
//	creds, path, err := hop.LoadDefaultAuth(os.Getenv)
//	c, err := hop.SelectCredential(creds, "kafka.scimma.org", "")
//	mech, err := c.SASLMechanism()
//	opts := []kafka.Option{kafka.WithSASL(mech, c.Username, c.Password)}
//	if c.TLS() {
//		opts = append(opts, kafka.WithTLS(&tls.Config{})) // RootCAs from c.SSLCALocation when set
//	}
package hop
