-- One database per service: no service reads another's.
CREATE DATABASE intake;
CREATE DATABASE dispatch;
CREATE DATABASE enforcement;
CREATE DATABASE appraisal;
