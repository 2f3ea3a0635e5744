// ovfread prints, as JSON, what VMware's govmomi library (package ovf,
// ovf.Unmarshal) reads from an OVF descriptor given on stdin. Used by
// tests/interop/test_ovf_readers.py; built offline in GOPATH mode against
// Debian's golang-github-vmware-govmomi-dev.
//
// govmomi 0.24.2 (Debian 12) has no field for <vmw:Config> in
// VirtualHardwareSection; newer govmomi has Config []Config with the
// attributes key, value and required. When the library has no such field,
// the entries are decoded a second time, with govmomi's own XML decoder and
// newer govmomi's mapping, and "config_from" says so.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/xml"
)

type item struct {
	InstanceID      string   `json:"instance_id"`
	ResourceType    *uint16  `json:"resource_type"`
	ResourceSubType *string  `json:"resource_sub_type"`
	ElementName     string   `json:"element_name"`
	HostResource    []string `json:"host_resource"`
	Connection      []string `json:"connection"`
	Address         *string  `json:"address"`
	Parent          *string  `json:"parent"`
	VirtualQuantity *uint    `json:"virtual_quantity"`
	AllocationUnits *string  `json:"allocation_units"`
	Automatic       *bool    `json:"automatic_allocation"`
}

type config struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Required *bool  `json:"required"`
}

type disk struct {
	DiskID   string  `json:"disk_id"`
	FileRef  *string `json:"file_ref"`
	Capacity string  `json:"capacity"`
	Units    *string `json:"capacity_units"`
	Format   *string `json:"format"`
}

type file struct {
	ID   string `json:"id"`
	Href string `json:"href"`
	Size uint   `json:"size"`
}

type osSection struct {
	ID          int16   `json:"id"`
	OSType      *string `json:"os_type"`
	Description *string `json:"description"`
}

type report struct {
	ID           string      `json:"id"`
	Name         *string     `json:"name"`
	Identifier   *string     `json:"system_identifier"`
	SystemType   *string     `json:"system_type"`
	OS           []osSection `json:"os"`
	Items        []item      `json:"items"`
	StorageItems int         `json:"storage_items"`
	Config       []config    `json:"config"`
	ConfigFrom   string      `json:"config_from"`
	Networks     []string    `json:"networks"`
	Disks        []disk      `json:"disks"`
	Files        []file      `json:"files"`
}

// The <vmw:Config> mapping of newer govmomi, for a library that lacks it.
type laterConfig struct {
	Required *bool  `xml:"required,attr"`
	Key      string `xml:"key,attr"`
	Value    string `xml:"value,attr"`
}

type laterEnvelope struct {
	VirtualSystem struct {
		VirtualHardware []struct {
			Config []laterConfig `xml:"Config"`
		} `xml:"VirtualHardwareSection"`
	} `xml:"VirtualSystem"`
}

// libraryConfig returns the library's own Config entries, if it has them.
func libraryConfig(vh *ovf.VirtualHardwareSection) ([]config, bool) {
	f := reflect.ValueOf(vh).Elem().FieldByName("Config")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil, false
	}
	out := []config{}
	for i := 0; i < f.Len(); i++ {
		c := f.Index(i)
		e := config{Key: c.FieldByName("Key").String(), Value: c.FieldByName("Value").String()}
		if r := c.FieldByName("Required"); r.IsValid() && !r.IsNil() {
			b := r.Elem().Bool()
			e.Required = &b
		}
		out = append(out, e)
	}
	return out, true
}

func laterMappingConfig(raw []byte) ([]config, error) {
	var e laterEnvelope
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&e); err != nil {
		return nil, err
	}
	out := []config{}
	for _, vh := range e.VirtualSystem.VirtualHardware {
		for _, c := range vh.Config {
			out = append(out, config{Key: c.Key, Value: c.Value, Required: c.Required})
		}
	}
	return out, nil
}

func hardware(r *report, vs *ovf.VirtualSystem, raw []byte) error {
	r.Items = []item{}
	r.Config = []config{}
	for i := range vs.VirtualHardware {
		vh := &vs.VirtualHardware[i]
		if vh.System != nil {
			r.Identifier = vh.System.VirtualSystemIdentifier
			r.SystemType = vh.System.VirtualSystemType
		}
		for _, it := range vh.Item {
			r.Items = append(r.Items, item{it.InstanceID, it.ResourceType, it.ResourceSubType, it.ElementName,
				it.HostResource, it.Connection, it.Address, it.Parent, it.VirtualQuantity,
				it.AllocationUnits, it.AutomaticAllocation})
		}
		r.StorageItems += len(vh.StorageItem)
		if c, ok := libraryConfig(vh); ok {
			r.Config = append(r.Config, c...)
			r.ConfigFrom = "library"
		}
	}
	if r.ConfigFrom == "" {
		c, err := laterMappingConfig(raw)
		if err != nil {
			return err
		}
		r.Config, r.ConfigFrom = c, "newer-govmomi-mapping"
	}
	return nil
}

func build(e *ovf.Envelope, raw []byte) (*report, error) {
	r := &report{OS: []osSection{}, Networks: []string{}, Disks: []disk{}, Files: []file{}}
	for _, f := range e.References {
		r.Files = append(r.Files, file{f.ID, f.Href, f.Size})
	}
	if e.Network != nil {
		for _, n := range e.Network.Networks {
			r.Networks = append(r.Networks, n.Name)
		}
	}
	if e.Disk != nil {
		for _, d := range e.Disk.Disks {
			r.Disks = append(r.Disks, disk{d.DiskID, d.FileRef, d.Capacity, d.CapacityAllocationUnits, d.Format})
		}
	}
	vs := e.VirtualSystem
	if vs == nil {
		return r, nil
	}
	r.ID, r.Name = vs.ID, vs.Name
	for _, o := range vs.OperatingSystem {
		r.OS = append(r.OS, osSection{o.ID, o.OSType, o.Description})
	}
	return r, hardware(r, vs, raw)
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err == nil {
		var e *ovf.Envelope
		if e, err = ovf.Unmarshal(bytes.NewReader(raw)); err == nil {
			var r *report
			if r, err = build(e, raw); err == nil {
				err = json.NewEncoder(os.Stdout).Encode(r)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ovfread: %v\n", err)
		os.Exit(1)
	}
}
