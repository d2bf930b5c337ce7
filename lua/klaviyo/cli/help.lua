-- klaviyo.cli.help: the text of `klaviyo --help`.
return [==[
usage: klaviyo VERB [ARGS] [OPTIONS]

Verbs
  call OPERATION [name=value ...] [--body @file.json | --body -]
                      any operation (klaviyo ops); path, query and header parameters by
                      name, lists comma-separated or repeated; prints the document as JSON
  pages OPERATION [name=value ...]
                      every resource of every page, one JSON object a line
  ops [WORD]          the operations whose id, path or tag holds WORD
  describe OPERATION  method, path, parameters, body, scopes, rate limits, safe to repeat
  track METRIC email=|phone_number=|external_id=|id=... [name=value ...]
        [--properties @file.json] [--unique-id ID] [--value N] [--value-currency EUR]
        [--time T] [--backfill]
                      records an event (name=value words other than the identifiers are
                      its properties); the same --unique-id is recorded once
  profile get email=|phone_number=|external_id=|id=VALUE
  profile upsert email=... [name=value ...] [--properties @file.json]
  subscribe email=... phone_number=... [list=ID] [--consented-at T|now --source HOW
        [--historical] [--transactional]]
                      SMS needs the opt-in record (--consented-at and --source)
  unsubscribe email=... phone_number=... [list=ID]
  list add|remove LIST_ID PROFILE_ID[,PROFILE_ID...] ...
  flow status FLOW_ID [draft|manual|live]
  mcp [--read-only]   a Model Context Protocol server on stdin/stdout
  name:=JSON instead of name=value gives a JSON value (track, profile upsert).

Options
  --key-file FILE     read the private key from FILE (else KLAVIYO_API_KEY; the public
                      key from KLAVIYO_PUBLIC_KEY); never give a key as an argument
  --base-url URL      another server (e.g. the emulator, http://127.0.0.1:PORT)
  --revision REV      the API revision
  --limiter redis://[:password@]host[:port][/db]
                      share the rate limits with every process using that Redis
  --dry-run           print the (first) request that would be sent, credentials
                      redacted, and send nothing
  --no-validate       send a body Klaviyo's spec would refuse instead of refusing it
  -h, --help          this text

Output and exit codes
  Results go to stdout as JSON. An error goes to stderr as one JSON object:
  {"kind", "status", "code", "detail", "pointer", "retry_after", "operation", "message"}
  0  success
  2  usage: a bad command line, or parameters the library refuses to build
  3  refused locally, nothing sent (e.g. SMS without an opt-in record, a name-only lookup)
  4  HTTP 4xx from Klaviyo (429 excepted), or no profile matched
  5  HTTP 5xx, a transport failure, an undecodable answer, or a result that
     could not be written to stdout (kind "output")
  6  rate limited (a 429, or a wait longer than the call may last)
]==]
