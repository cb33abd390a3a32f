-- A claimed job's lease holds its claim's token. An abort of a running job also appends ABORT_MARK to it (and
-- a lease taken back after it lapsed gets one, the abort having maybe come meanwhile), so the finish, which
-- reads the lease anyway, takes the job off the abort set only when one may be there: no command otherwise.
local ABORT_MARK = '|abort'

local function held_by(lease, token)
  return lease == token or lease == token .. ABORT_MARK
end
