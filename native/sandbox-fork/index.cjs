'use strict';
module.exports = require('./build/Release/sandbox_fork.node');
