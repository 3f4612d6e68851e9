// OidcCredentials post-job step (task.json postjobexecution): the launcher in its "post" mode.
'use strict';
require('./launcher').main(['post']);
