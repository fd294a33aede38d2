// Package objects holds LwM2M object definitions: which resources an object
// has, their data types, multiplicity and allowed operations.
//
// The project ships its own definitions of the objects its devices use
// (Default), written as Go tables from the OMA LwM2M registry, and loads
// further definitions from OMA DDF XML files (Catalog.LoadDir,
// Catalog.LoadFile), the format of the registry's <id>.xml files. Codecs that
// carry no type information (TLV, text/plain, LwM2M-CBOR numbers) type their
// values through Catalog.TypeOf, which has the shape of an lwm2m.TypeFunc.
//
// # Built-in definitions
//
// Each built-in object follows the newest version published in the OMA
// registry (the file <id>.xml at the registry's root); newer minor versions
// of an object only add resources, so devices implementing an older version
// are described by a superset:
//
//	id     name                        object version  LwM2M version of the DDF
//	0      LWM2M Security              1.2             1.1
//	1      LwM2M Server                1.2             1.2
//	2      LwM2M Access Control        1.1             1.0
//	3      Device                      1.2             1.1
//	4      Connectivity Monitoring     1.3             1.1
//	5      Firmware Update             1.2             1.1
//	6      Location                    1.0             1.0
//	7      Connectivity Statistics     1.0             1.0
//	9      LWM2M Software Management   1.0             1.0
//	19     BinaryAppDataContainer      1.0             1.0
//	3303   Temperature                 1.1             1.0
//	3304   Humidity                    1.1             1.0
//	3311   Light Control               1.0             1.0
//	3313   Accelerometer               1.1             1.0
//	3315   Barometer                   1.1             1.0
//	3323   Pressure                    1.1             1.0
//	3336   Location (IPSO)             2.0             1.0
//	3342   On/Off switch               1.1             1.0
//	10240  Registration Events         1.0             (none)
//
// Object 10240 is not in the OMA registry: it is flownexus's own object
// for the server-side timestamps of a device's last Register, Deregister
// and Update, stored and shown like any device resource. A DDF file may
// override it like any other definition.
//
// A test (objects_registry_test.go) compares every built-in definition but
// 10240 with the registry files and loads the whole registry with the
// loader.
package objects
